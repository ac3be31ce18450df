//! The price actor against a mock server on 127.0.0.1: good answers, errors, timeouts, rate
//! limits, malformed bodies, the fallback, the cache across restarts, stale marking, and the
//! whole thing through `shepherd run` and `/api/herd_data`. No test reaches the internet.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::mock_http::{MockServer, Reply};
use shepherd::clock::now_ms;
use shepherd::config::{NetworkConfig, PriceConfig};
use shepherd::db::{self, DbActor, IngestStats, ReadPool};
use shepherd::model::price::PriceProvider;
use shepherd::price::cache::{self, NetworkView, PriceView};
use shepherd::price::fetch::{FetchError, Http};
use shepherd::price::{PriceActor, Refresh, RefreshReport};

const COINCODEX: &str = "/api/coincodex/get_coin/btc";
const COINGECKO: &str = "/api/v3/simple/price";
const MEMPOOL_PRICES: &str = "/api/v1/prices";
const HASHRATE: &str = "/api/v1/mining/hashrate/3d";

fn price_config(server: &MockServer) -> PriceConfig {
    PriceConfig {
        enabled: true,
        coincodex_url: server.url(),
        fallback_url: format!("{}{COINGECKO}", server.url()),
        currency: "USD".into(),
        // Long, so only Refresh fetches during a test.
        interval_secs: 3600,
        stale_after_secs: 3600,
        timeout_secs: 1,
    }
}

fn network_config(server: &MockServer) -> NetworkConfig {
    NetworkConfig {
        enabled: true,
        mempool_url: server.url(),
        interval_secs: 3600,
        stale_after_secs: 3600,
        timeout_secs: 1,
    }
}

/// A database writer, a read pool and a price actor on `path`, as `shepherd run` wires them.
struct Rig {
    actor: Addr<PriceActor>,
    pool: ReadPool,
    price: PriceConfig,
    network: NetworkConfig,
}

impl Rig {
    /// Both feeds on `server`, database `s.db` in `dir`.
    fn with_both_feeds(dir: &Path, server: &MockServer) -> Self {
        Self::start(
            &dir.join("s.db"),
            price_config(server),
            network_config(server),
        )
    }

    fn start(path: &Path, price: PriceConfig, network: NetworkConfig) -> Self {
        let (conn, _) = db::open_writer(path).unwrap();
        let db = DbActor::new(
            conn,
            100,
            Duration::from_millis(100),
            Arc::new(IngestStats::default()),
        )
        .start();
        let pool = ReadPool::new(path.to_owned());
        let actor = PriceActor::new(&price, &network, db, pool.clone()).start();
        Rig {
            actor,
            pool,
            price,
            network,
        }
    }

    async fn refresh(&self) -> RefreshReport {
        self.actor.send(Refresh).await.unwrap()
    }

    fn price_view(&self) -> PriceView {
        self.pool
            .with(|c| cache::price_view(c, &self.price, now_ms()))
            .unwrap()
    }

    fn network_view(&self) -> NetworkView {
        self.pool
            .with(|c| cache::network_view(c, &self.network, now_ms()))
            .unwrap()
    }
}

/// A mock serving every provider fixture at its path.
fn fixture_server() -> MockServer {
    let server = MockServer::start();
    server.serve_fixtures();
    server
}

/// Runs `f` in a fresh actix system, as one process run of the program.
fn run(f: impl std::future::Future<Output = ()>) {
    actix_rt::System::new().block_on(f);
}

fn last_error(r: &Option<shepherd::price::FeedOutcome>) -> String {
    r.as_ref().unwrap().last_error.clone().unwrap_or_default()
}

#[test]
fn good_responses_are_stored_and_shown_with_their_fetch_time() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let rig = Rig::with_both_feeds(dir.path(), &server);
        let before = now_ms();
        let report = rig.refresh().await;
        assert!(report.price.as_ref().unwrap().stored, "{report:?}");
        assert!(report.network.as_ref().unwrap().stored, "{report:?}");

        let p = rig.price_view();
        assert_eq!(p.price, Some(91876.42));
        assert_eq!(p.currency, "USD");
        assert_eq!(p.change_24h_percent, Some(-1.37));
        assert_eq!(p.source, Some(PriceProvider::Coincodex));
        assert_eq!(p.last_error, None);
        assert!(!p.stale);
        assert!(p.fetched_at.unwrap() >= before);
        assert_eq!(p.quoted_at, Some(1_795_183_503_000));
        assert_eq!(
            server.hits(COINGECKO),
            0,
            "fallback asked although CoinCodex answered"
        );

        let n = rig.network_view();
        assert_eq!(n.difficulty, Some(152_271_405_447_205.1));
        assert_eq!(n.hashrate_hs, Some(1.0912e21));
        assert_eq!(n.block_height, Some(927_178));
        assert_eq!(n.retarget.unwrap().remaining_blocks, 1182);
        assert_eq!((n.stale, n.last_error), (false, None));
    });
}

#[test]
fn http_500_from_coincodex_falls_back_to_coingecko() {
    let server = fixture_server();
    server.set(COINCODEX, Reply::status(500));
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let rig = Rig::with_both_feeds(dir.path(), &server);
        let report = rig.refresh().await;
        let err = last_error(&report.price);
        assert!(err.contains("coincodex: HTTP 500"), "{err}");
        assert!(err.contains("price from coingecko"), "{err}");
        let p = rig.price_view();
        assert_eq!(p.price, Some(91862.0));
        assert_eq!(p.change_24h_percent, Some(-1.3512));
        assert_eq!(p.source, Some(PriceProvider::Coingecko));
        assert_eq!(p.last_error.as_deref(), Some(err.as_str()));
        let asked = server.requests(COINGECKO);
        assert_eq!(asked.len(), 1);
        assert!(
            asked[0].contains("vs_currencies=usd") && asked[0].contains("include_24hr_change=true"),
            "{asked:?}"
        );
    });
}

#[test]
fn eur_comes_from_mempool_prices_without_asking_coincodex() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let price = PriceConfig {
            currency: "EUR".into(),
            fallback_url: format!("{}{MEMPOOL_PRICES}", server.url()),
            ..price_config(&server)
        };
        let mut network = network_config(&server);
        network.enabled = false;
        let rig = Rig::start(&dir.path().join("s.db"), price, network);
        let report = rig.refresh().await;
        assert_eq!(report.network, None);
        assert!(report.price.unwrap().stored);
        let p = rig.price_view();
        assert_eq!((p.price, p.currency.as_str()), (Some(79420.0), "EUR"));
        assert_eq!(p.change_24h_percent, None);
        assert_eq!(p.source, Some(PriceProvider::Mempool));
        assert_eq!(server.hits(COINCODEX), 0);
        assert_eq!(server.hits(HASHRATE), 0);
    });
}

#[test]
fn a_timeout_is_reported_quickly_and_the_last_price_stays() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let rig = Rig::with_both_feeds(dir.path(), &server);
        rig.refresh().await;
        let first = rig.price_view();

        server.set(COINCODEX, Reply::Hang);
        server.set(COINGECKO, Reply::Hang);
        server.set(HASHRATE, Reply::Hang);
        let start = Instant::now();
        let report = rig.refresh().await;
        // Two price sources and the network, 1 s each, the feeds in parallel.
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
        let err = last_error(&report.price);
        assert!(err.contains("coincodex: no answer within 1 s"), "{err}");
        assert!(err.contains("coingecko: no answer within 1 s"), "{err}");
        let net = last_error(&report.network);
        assert!(
            net.contains("mempool hashrate: no answer within 1 s"),
            "{net}"
        );

        let p = rig.price_view();
        assert_eq!(
            p.price, first.price,
            "a failed fetch must not change the price"
        );
        assert_eq!(p.fetched_at, first.fetched_at);
        assert_eq!(p.last_error.as_deref(), Some(err.as_str()));
        assert!(p.last_attempt > first.fetched_at);
        let n = rig.network_view();
        assert_eq!(n.difficulty, Some(152_271_405_447_205.1));
        assert!(n.last_error.unwrap().contains("no answer"));
    });
}

#[test]
fn http_429_backs_off_for_retry_after_and_uses_the_fallback_meanwhile() {
    let server = fixture_server();
    server.set(COINCODEX, Reply::with_header(429, "Retry-After", "2"));
    server.set(HASHRATE, Reply::with_header(429, "Retry-After", "2"));
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let rig = Rig::with_both_feeds(dir.path(), &server);
        let t0 = now_ms();
        let report = rig.refresh().await;
        let err = last_error(&report.price);
        assert!(
            err.contains("rate limited (HTTP 429), asked to wait 2 s"),
            "{err}"
        );
        assert_eq!(rig.price_view().source, Some(PriceProvider::Coingecko));
        let retry_at = rig.price_view().retry_at.expect("retry_at while limited");
        assert!(
            (t0 + 2000..=now_ms() + 2000).contains(&retry_at),
            "{retry_at}"
        );
        assert!(last_error(&report.network).contains("HTTP 429"));

        // Within the Retry-After, CoinCodex and mempool are not asked again.
        let report = rig.refresh().await;
        assert_eq!(server.hits(COINCODEX), 1);
        assert_eq!(server.hits(COINGECKO), 2);
        assert_eq!(server.hits(HASHRATE), 1);
        assert!(last_error(&report.price).contains("coincodex: rate limited, not asked until"));
        assert!(last_error(&report.network).contains("mempool: rate limited, not asked until"));

        // After it, they are, and a good answer clears the error.
        server.serve_fixtures();
        let wait = (retry_at - now_ms()).max(0) as u64 + 200;
        actix_rt::time::sleep(Duration::from_millis(wait)).await;
        let report = rig.refresh().await;
        assert_eq!(server.hits(COINCODEX), 2);
        assert_eq!(report.price.unwrap().last_error, None);
        assert_eq!(report.network.unwrap().last_error, None);
        let p = rig.price_view();
        assert_eq!(
            (p.source, p.retry_at),
            (Some(PriceProvider::Coincodex), None)
        );
    });
}

#[test]
fn malformed_bodies_are_errors_never_prices() {
    let server = fixture_server();
    server.set(COINCODEX, Reply::ok(r#"{"last_price_usd":"91876.42"}"#));
    server.set(COINGECKO, Reply::ok(r#"{"bitcoin":{"usd":-5}}"#));
    server.set(HASHRATE, Reply::ok("<html>maintenance</html>"));
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let rig = Rig::with_both_feeds(dir.path(), &server);
        let report = rig.refresh().await;
        assert!(!report.price.as_ref().unwrap().stored);
        let err = last_error(&report.price);
        assert!(err.contains("field last_price_usd is a string"), "{err}");
        assert!(err.contains("field bitcoin.usd is -5"), "{err}");
        let p = rig.price_view();
        assert_eq!((p.price, p.fetched_at, p.source), (None, None, None));
        assert!(p.stale);
        assert_eq!(p.last_error.as_deref(), Some(err.as_str()));
        let n = rig.network_view();
        assert_eq!(n.difficulty, None);
        assert!(n.last_error.unwrap().contains("not JSON"));

        // Missing field, zero price.
        server.set(COINCODEX, Reply::ok("{}"));
        server.set(COINGECKO, Reply::ok(r#"{"bitcoin":{"usd":0}}"#));
        let err = last_error(&rig.refresh().await.price);
        assert!(err.contains("last_price_usd is missing"), "{err}");
        assert!(err.contains("bitcoin.usd is 0"), "{err}");
        assert_eq!(rig.price_view().price, None);
    });
}

#[test]
fn the_cache_survives_a_restart_and_a_dead_network() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut fetched_at = None;
    run(async {
        let rig = Rig::start(&path, price_config(&server), network_config(&server));
        rig.refresh().await;
        fetched_at = rig.price_view().fetched_at;
        assert!(fetched_at.is_some());
    });

    // A new process: the database reopened, and a new actor whose providers are unreachable.
    let dead = MockServer::start();
    let dead_url = dead.url();
    drop(dead);
    run(async {
        let price = PriceConfig {
            coincodex_url: dead_url.clone(),
            fallback_url: format!("{dead_url}{COINGECKO}"),
            ..price_config(&server)
        };
        let network = NetworkConfig {
            mempool_url: dead_url.clone(),
            ..network_config(&server)
        };
        let rig = Rig::start(&path, price, network);
        let p = rig.price_view();
        assert_eq!(p.price, Some(91876.42));
        assert_eq!(p.fetched_at, fetched_at);
        assert_eq!(rig.network_view().block_height, Some(927_178));

        let report = rig.refresh().await;
        let err = last_error(&report.price);
        assert!(err.contains("coincodex: cannot connect"), "{err}");
        let p = rig.price_view();
        assert_eq!(p.price, Some(91876.42), "the last known price stays");
        assert_eq!(p.fetched_at, fetched_at, "marked as of its own fetch time");
        assert_eq!(p.last_error.as_deref(), Some(err.as_str()));
        assert!(last_error(&report.network).contains("cannot connect"));
    });

    // And a restart does not fetch again before the interval is up.
    let hits = server.hits(COINCODEX);
    run(async {
        let _rig = Rig::start(&path, price_config(&server), network_config(&server));
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
    });
    assert_eq!(server.hits(COINCODEX), hits);
}

#[test]
fn values_turn_stale_after_the_configured_age() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let price = PriceConfig {
            interval_secs: 1,
            stale_after_secs: 1,
            ..price_config(&server)
        };
        let mut network = network_config(&server);
        network.enabled = false;
        let rig = Rig::start(&dir.path().join("s.db"), price, network);
        rig.refresh().await;
        assert!(!rig.price_view().stale);
        // The provider goes away; the value ages past stale_after_secs.
        server.set(COINCODEX, Reply::status(503));
        server.set(COINGECKO, Reply::status(503));
        actix_rt::time::sleep(Duration::from_millis(2200)).await;
        let p = rig.price_view();
        assert!(p.stale, "{p:?}");
        assert_eq!(
            p.price,
            Some(91876.42),
            "stale, but still the last real value"
        );
        assert!(p.last_error.unwrap().contains("HTTP 503"));
    });
}

#[test]
fn disabled_feeds_ask_nobody() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let mut price = price_config(&server);
        let mut network = network_config(&server);
        price.enabled = false;
        network.enabled = false;
        let rig = Rig::start(&dir.path().join("s.db"), price, network);
        let report = rig.refresh().await;
        assert_eq!((report.price, report.network), (None, None));
        let p = rig.price_view();
        assert!(!p.enabled && p.price.is_none());
        assert!(p.last_error.unwrap().contains("enabled = false"));
    });
    assert_eq!(server.hits(COINCODEX) + server.hits(HASHRATE), 0);
}

#[test]
fn http_failures_are_classified() {
    let server = MockServer::start();
    server.set("/ok", Reply::ok("fine"));
    server.set("/500", Reply::status(500));
    server.set("/503", Reply::status(503));
    server.set("/503-later", Reply::with_header(503, "Retry-After", "30"));
    server.set(
        "/429-date",
        Reply::with_header(429, "Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    server.set("/429", Reply::status(429));
    server.set("/hang", Reply::Hang);
    server.set("/big", Reply::ok(&"x".repeat(2 << 20)));
    let http = Http::new(Duration::from_secs(1));
    let get = |path: &str| http.get(&format!("{}{path}", server.url()));

    assert_eq!(get("/ok"), Ok("fine".into()));
    assert_eq!(get("/500"), Err(FetchError::Status(500)));
    assert_eq!(get("/503"), Err(FetchError::Status(503)));
    assert_eq!(get("/nothing-here"), Err(FetchError::Status(404)));
    assert_eq!(
        get("/503-later"),
        Err(FetchError::RateLimited {
            status: 503,
            retry_after: Some(Duration::from_secs(30))
        })
    );
    // A date in the past means "now".
    assert_eq!(
        get("/429-date"),
        Err(FetchError::RateLimited {
            status: 429,
            retry_after: Some(Duration::ZERO)
        })
    );
    assert_eq!(
        get("/429"),
        Err(FetchError::RateLimited {
            status: 429,
            retry_after: None
        })
    );
    let start = Instant::now();
    assert_eq!(
        get("/hang"),
        Err(FetchError::Timeout(Duration::from_secs(1)))
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(matches!(get("/big"), Err(FetchError::Transport(_))));

    let closed = {
        let dead = MockServer::start();
        dead.url()
    };
    let err = http.get(&closed).unwrap_err();
    assert!(matches!(err, FetchError::Connect(_)), "{err:?}");
}

#[test]
fn herd_data_and_dashboard_show_price_network_and_odds() {
    let server = fixture_server();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[price]\ncoincodex_url = \"{0}\"\nfallback_url = \"\"\ninterval_secs = 3600\n\
         stale_after_secs = 3600\ntimeout_secs = 1\n\
         [network]\nmempool_url = \"{0}\"\ninterval_secs = 3600\ntimeout_secs = 1\n",
        server.url()
    );
    let mut run = common::Running::start_with(dir.path(), &config, &["--demo", "1"]);
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["price"]["price"].as_f64().is_some()
            && v["network"]["difficulty"].as_f64().is_some()
            && v["odds"].is_object()
            && v["miners"][0]["odds"].is_object()
    });
    let p = &herd["price"];
    assert_eq!(p["price"], 91876.42);
    assert_eq!(p["currency"], "USD");
    assert_eq!(p["change_24h_percent"], -1.37);
    assert_eq!(p["source"], "coincodex");
    assert_eq!(p["stale"], false);
    assert!(p["last_error"].is_null());
    assert!(p["fetched_at"].as_i64().unwrap() > 0);
    let n = &herd["network"];
    assert_eq!(n["block_height"], 927_178);
    assert_eq!(n["hashrate_hs"], 1.0912e21);
    assert_eq!(n["stale"], false);
    let odds = &herd["odds"];
    let h = odds["hashrate_hs"].as_f64().unwrap();
    assert!(
        (h - herd["totals"]["hashrate_khs"].as_f64().unwrap() * 1000.0).abs() < 1e-6,
        "{herd:#}"
    );
    let years = 152_271_405_447_205.1 * 4_294_967_296.0 / h / (365.25 * 86_400.0);
    let got = odds["expected_years_to_block"].as_f64().unwrap();
    assert!(((got - years) / years).abs() < 1e-9, "{got} vs {years}");
    for key in ["chance_per_day", "chance_per_year"] {
        let c = odds[key].as_f64().unwrap();
        assert!(c > 0.0 && c < 1e-6, "{key} = {c}");
    }

    let (status, page) = run.get("/").unwrap();
    assert_eq!(status, 200);
    for text in [
        "BTC price",
        "91,876 USD",
        "−1.37 %",
        "as of ",
        "Network difficulty",
        "152.27T",
    ] {
        assert!(page.contains(text), "dashboard lacks {text:?}");
    }
    run.terminate();
}
