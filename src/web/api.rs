//! JSON endpoints.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::clock::now_ms;
use crate::db::actor::IngestSnapshot;
use crate::db::queries::{self, HerdTotals, MinerView};
use crate::db::records::{self, FoundBlock, LotteryFigures, ShareRecord};
use crate::lottery::{self, Odds};
use crate::price::cache::{self, NetworkView, PriceView};
use crate::summary::Status;

/// `/api/herd_data`: the one document every dashboard polls (shape in the README).
#[derive(Debug, Serialize)]
pub struct HerdData {
    /// Program version.
    pub version: &'static str,
    /// This Shepherd's site (`[site] name`, default the hostname): its topic level on MQTT.
    pub site: String,
    /// Server clock (Unix ms), so pages can tell how old their data is.
    pub server_time: i64,
    /// Herd-wide figures.
    pub totals: HerdTotals,
    /// Every miner.
    pub miners: Vec<MinerView>,
    /// Ingest counters.
    pub ingest: IngestSnapshot,
    /// Last known BTC price (null-safe: nulls when never fetched).
    pub price: PriceView,
    /// Last known network difficulty, hashrate and height.
    pub network: NetworkView,
    /// The herd's lottery odds at its current hashrate; null without a network difficulty.
    pub odds: Option<Odds>,
    /// The herd's best shares, luck, coin flips and blocks found.
    pub lottery: HerdLottery,
}

/// The lottery part of the herd document.
#[derive(Debug, Serialize)]
pub struct HerdLottery {
    /// Herd-wide best share, luck and coin flips.
    #[serde(flatten)]
    pub figures: LotteryFigures,
    /// The herd's top 10 best shares.
    pub records: Vec<ShareRecord>,
    /// The newest live record of any miner.
    pub latest_record: Option<ShareRecord>,
    /// The newest record that beat the herd's best: pages announce it once (by id) as
    /// "new herd record".
    pub latest_herd_record: Option<ShareRecord>,
    /// Every block found, newest first.
    pub found_blocks: Vec<FoundBlock>,
    /// When a test celebration was last asked for on /settings (Unix ms): pages show it,
    /// marked TEST, for a minute.
    pub test_celebration_at: Option<i64>,
}

/// Builds the herd document (blocking: run it off the event loop).
pub fn herd(state: &AppState) -> Result<HerdData, crate::db::DbError> {
    let now = now_ms();
    let stall = (state.config.summarizer.stall_secs * 1000) as i64;
    let (mut miners, price, network, keys, (per, herd_figures), lottery_rows, fleet) =
        state.pool.with(|c| {
            let network = cache::network_view(c, &state.config.network, now)?;
            let figures = records::lottery_figures(c, now, network.difficulty)?;
            Ok((
                queries::miner_views(c, now, stall)?,
                cache::price_view(c, &state.config.price, now)?,
                network,
                records::miner_keys(c)?,
                figures,
                (
                    records::herd_records(c)?,
                    records::latest_record(c)?,
                    records::latest_herd_record(c)?,
                    records::found_blocks(c)?,
                    records::test_celebration_at(c)?,
                ),
                crate::db::fleet::fleet(c)?,
            ))
        })?;
    let fleet: std::collections::HashMap<i64, crate::db::fleet::HerdFleet> =
        fleet.iter().map(|f| (f.id, f.into())).collect();
    for m in &mut miners {
        m.fleet = fleet.get(&m.id).cloned().unwrap_or_default();
        m.odds = miner_odds(m, network.difficulty);
        m.lottery = Some(
            keys.get(&m.id)
                .and_then(|k| per.get(k))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let (herd_records, latest_record, latest_herd_record, found_blocks, test_celebration_at) =
        lottery_rows;
    let totals = queries::totals(&miners);
    let odds = network
        .difficulty
        .and_then(|d| lottery::odds(d, totals.hashrate_khs * 1000.0));
    Ok(HerdData {
        version: env!("CARGO_PKG_VERSION"),
        site: state.config.site.effective_name(),
        server_time: now,
        totals,
        miners,
        ingest: state.stats.snapshot(),
        price,
        network,
        odds,
        lottery: HerdLottery {
            figures: herd_figures,
            records: herd_records,
            latest_record,
            latest_herd_record,
            found_blocks,
            test_celebration_at,
        },
    })
}

/// Odds at the hashrate the miner runs at now: an offline miner is not in the draw.
fn miner_odds(m: &MinerView, difficulty: Option<f64>) -> Option<Odds> {
    if m.status != Status::Online {
        return None;
    }
    lottery::odds(difficulty?, m.hashrate_khs? * 1000.0)
}

/// Runs a blocking database read on the thread pool and maps failure to a 500 with text.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::db::DbError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(web::block(f).await??)
}

/// A JSON answer that browsers and proxies must not cache: every API document is live data.
pub fn fresh_json<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// `GET /api/herd_data`
pub async fn herd_data(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let data = blocking(move || herd(&state)).await?;
    Ok(fresh_json(&data))
}

/// `GET /healthz`: 200 `ok` while the database answers and takes writes; 503 with the reason
/// while writes fail (a full disk), so a watchdog sees what the dashboard shows.
pub async fn healthz(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    blocking(move || pool.with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))).await?;
    if let Some(f) = state.stats.write_failure() {
        return Ok(HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "database writes failing since {}: {} (free disk space)",
                super::format::utc_time(Some(f.since)),
                f.error
            )));
    }
    Ok(HttpResponse::Ok().body("ok"))
}
