//! JSON endpoints.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use std::sync::Arc;

use super::error::ApiError;
use super::AppState;
use crate::herd::HerdData;

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

/// The herd document the summarizer published last (built here only before its first),
/// with the writer's counters as they are now: a failing disk shows at once, not at the
/// next publication.
pub async fn herd(state: &AppState) -> Result<HerdData, ApiError> {
    let doc: Arc<HerdData> = match state.herd.latest() {
        Some(doc) => doc,
        None => {
            let feed = state.herd.clone();
            blocking(move || feed.current()).await?
        }
    };
    let mut doc = HerdData::clone(&doc);
    doc.ingest = state.stats.snapshot();
    Ok(doc)
}

/// `GET /api/herd_data`
pub async fn herd_data(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    Ok(fresh_json(&herd(&state).await?))
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
