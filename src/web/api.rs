//! JSON endpoints.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::clock::now_ms;
use crate::db::actor::IngestSnapshot;
use crate::db::queries::{self, HerdTotals, MinerView};
use crate::lottery::{self, Odds};
use crate::price::cache::{self, NetworkView, PriceView};
use crate::summary::Status;

/// `/api/herd_data`: the one document every dashboard polls (shape in the README).
#[derive(Debug, Serialize)]
pub struct HerdData {
    /// Program version.
    pub version: &'static str,
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
}

/// Builds the herd document (blocking: run it off the event loop).
pub fn herd(state: &AppState) -> Result<HerdData, crate::db::DbError> {
    let now = now_ms();
    let stall = (state.config.summarizer.stall_secs * 1000) as i64;
    let (mut miners, price, network) = state.pool.with(|c| {
        Ok((
            queries::miner_views(c, now, stall)?,
            cache::price_view(c, &state.config.price, now)?,
            cache::network_view(c, &state.config.network, now)?,
        ))
    })?;
    for m in &mut miners {
        m.odds = miner_odds(m, network.difficulty);
    }
    let totals = queries::totals(&miners);
    let odds = network
        .difficulty
        .and_then(|d| lottery::odds(d, totals.hashrate_khs * 1000.0));
    Ok(HerdData {
        version: env!("CARGO_PKG_VERSION"),
        server_time: now,
        totals,
        miners,
        ingest: state.stats.snapshot(),
        price,
        network,
        odds,
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
