//! `/api/alerts`, `/metrics` and `/healthz.json`: what watchdogs, Prometheus and the
//! dashboard's alerts panel read.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::api::blocking;
use super::AppState;
use crate::clock::now_ms;
use crate::db::alerts::{self, AlertRow};
use crate::herd::HerdData;
use crate::metrics::{self, Scrape};

/// Alerts kept in the history shown by `/api/alerts`.
const HISTORY: usize = 50;

/// `/api/alerts`: what is active now and what happened lately.
#[derive(Debug, Serialize)]
pub struct AlertsData {
    /// Server clock (Unix ms).
    pub server_time: i64,
    /// Active alerts, newest first.
    pub active: Vec<AlertRow>,
    /// The latest alerts of any state, newest first.
    pub history: Vec<AlertRow>,
}

/// `GET /api/alerts`
pub async fn alerts_data(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    let data = blocking(move || {
        pool.with(|c| {
            Ok(AlertsData {
                server_time: now_ms(),
                active: alerts::active(c)?,
                history: alerts::history(c, HISTORY)?,
            })
        })
    })
    .await?;
    Ok(super::api::fresh_json(&data))
}

/// The herd as last published, and how many alerts are active.
fn herd_and_active_alerts(state: &AppState) -> Result<(Arc<HerdData>, usize), crate::db::DbError> {
    let herd = state.herd.current()?;
    Ok((herd, state.pool.with(|c| Ok(alerts::active(c)?.len()))?))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let text = blocking(move || {
        let (herd, active) = herd_and_active_alerts(&state)?;
        Ok(metrics::render(&Scrape {
            miners: &herd.miners,
            ingest: &state.stats.snapshot(),
            db_bytes: metrics::db_sizes(&state.config.database.path),
            alerts_active: active,
            notify: &state.notify_stats,
        }))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// `/healthz.json`: for watchdogs that want more than a status code.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` while the database answers.
    pub status: &'static str,
    /// Program version.
    pub version: &'static str,
    /// Miners configured / online.
    pub miners: usize,
    /// Miners online.
    pub online: usize,
    /// Lines waiting for the database writer.
    pub queued_lines: usize,
    /// Lines dropped since start.
    pub dropped_lines: u64,
    /// Alerts active now.
    pub alerts_active: usize,
}

/// `GET /healthz.json`: 200 with figures while the database answers.
pub async fn healthz_json(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let health = blocking(move || {
        let (herd, active) = herd_and_active_alerts(&state)?;
        let totals = &herd.totals;
        let ingest = state.stats.snapshot();
        Ok(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            miners: totals.miners,
            online: totals.online,
            queued_lines: ingest.queued_lines,
            dropped_lines: ingest.dropped_lines,
            alerts_active: active,
        })
    })
    .await?;
    Ok(super::api::fresh_json(&health))
}
