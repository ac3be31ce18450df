//! `/incidents` and `GET /api/incidents`: the herd's troubles as episodes (filter by miner,
//! kind, open or closed) and every miner's availability over 24 h, 7 d and 30 d.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::api::{blocking, fresh_json};
use super::frame::{error_page, layout};
use super::AppState;
use crate::clock::now_ms;
use crate::db::incidents::{self, Availability, Filter, IncidentRow};
use crate::incidents::IncidentKind;

/// Episodes listed when no `limit` is given, and the most a request may ask for.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 2000;

/// The query string of both: `?miner=NAME|ID&kind=offline&state=open|closed&limit=N`.
#[derive(Debug, Default, Deserialize)]
pub struct IncidentQuery {
    /// A miner's name or id.
    pub miner: Option<String>,
    /// An [`IncidentKind`] name.
    pub kind: Option<String>,
    /// `open` or `closed`.
    pub state: Option<String>,
    /// At most this many episodes.
    pub limit: Option<usize>,
}

/// `GET /api/incidents`.
#[derive(Debug, Serialize)]
pub struct IncidentsData {
    /// Server clock (Unix ms).
    pub server_time: i64,
    /// Episodes, newest first.
    pub incidents: Vec<IncidentRow>,
    /// Per miner, by name.
    pub availability: Vec<Availability>,
}

/// A filter from the query string, or what is wrong with it. `miner` is resolved later (it
/// needs the database): the raw text is returned beside the filter.
pub fn parse_query(q: &IncidentQuery) -> Result<(Filter, Option<String>, usize), String> {
    let kind = match q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(IncidentKind::parse(k).ok_or_else(|| {
            let names: Vec<_> = IncidentKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("kind {k:?} is not one of {}", names.join(", "))
        })?),
    };
    let open = match q.state.as_deref().map(str::trim) {
        None | Some("") | Some("all") => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(s) => return Err(format!("state {s:?} is not one of open, closed, all")),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
    }
    let miner = q
        .miner
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    Ok((
        Filter {
            miner_id: None,
            kind,
            open,
        },
        miner,
        limit,
    ))
}

/// Reads what a query asks for; `Ok(None)` when it names no known miner.
fn load(
    state: &AppState,
    mut filter: Filter,
    miner: Option<String>,
    limit: usize,
) -> Result<Option<IncidentsData>, crate::db::DbError> {
    let now = now_ms();
    state.pool.with(|c| {
        if let Some(m) = &miner {
            let id = c
                .query_row(
                    "SELECT id FROM miners WHERE name = ?1 OR CAST(id AS TEXT) = ?1",
                    [m],
                    |r| r.get::<_, i64>(0),
                )
                .ok();
            match id {
                Some(id) => filter.miner_id = Some(id),
                None => return Ok(None),
            }
        }
        Ok(Some(IncidentsData {
            server_time: now,
            incidents: incidents::list(c, now, &filter, limit)?,
            availability: incidents::availability(c, now, filter.miner_id)?,
        }))
    })
}

/// `GET /api/incidents`
pub async fn api(
    state: web::Data<AppState>,
    q: web::Query<IncidentQuery>,
) -> actix_web::Result<HttpResponse> {
    let (filter, miner, limit) = match parse_query(&q) {
        Ok(p) => p,
        Err(e) => return Ok(HttpResponse::BadRequest().json(serde_json::json!({ "error": e }))),
    };
    let st = state.into_inner();
    match blocking(move || load(&st, filter, miner, limit)).await? {
        Some(data) => Ok(fresh_json(&data)),
        None => Ok(HttpResponse::NotFound()
            .json(serde_json::json!({ "error": "no miner has that name or id" }))),
    }
}

/// `GET /api/identifying`: `{"miners": [id, …]}` being identified (the dashboard shows them
/// as "identifying" until they mine again).
pub async fn identifying(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    let ids = blocking(move || pool.with(|c| incidents::identifying(c, now_ms()))).await?;
    Ok(fresh_json(&serde_json::json!({ "miners": ids })))
}

/// `GET /incidents`: the list with its filters, and the availability table.
pub async fn page(
    state: web::Data<AppState>,
    q: web::Query<IncidentQuery>,
) -> actix_web::Result<HttpResponse> {
    let (filter, miner, limit) = match parse_query(&q) {
        Ok(p) => p,
        Err(e) => return Ok(error_page(StatusCode::BAD_REQUEST, "Bad filter", &e)),
    };
    let st = state.into_inner();
    let picked = (q.miner.clone(), q.kind.clone(), q.state.clone());
    match blocking(move || load(&st, filter, miner, limit)).await? {
        None => Ok(error_page(
            StatusCode::NOT_FOUND,
            "No such miner",
            "No miner has that name or id; clear the miner filter.",
        )),
        Some(data) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(render(&data, &picked).into_string())),
    }
}

/// "2 h 05 min", "40 s".
pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// "99.5 %" or "—".
pub fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "—".into(), |p| format!("{p:.1} %"))
}

/// The episodes as a table (the herd page and a miner's own page share it).
pub fn table(rows: &[IncidentRow], with_miner: bool) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { "No incidents in the last 30 days." }
        } @else {
            // Causes and actions wrap; a phone scrolls the table, not the page.
            div.table-scroll { table.incidents {
                thead { tr {
                    @if with_miner { th { "Miner" } }
                    th { "Kind" } th { "Started" } th { "Ended" } th { "Duration" } th { "Cause" } th { "What was done" }
                } }
                tbody {
                    @for r in rows {
                        tr class=@if r.open { "open" } @else { "closed" } {
                            @if with_miner {
                                td { a href={"/miners/" (r.episode.miner_id)} { (r.miner.as_deref().unwrap_or("(removed)")) } }
                            }
                            td { span class={"badge incident-" (r.episode.kind.as_str())} { (r.label) } }
                            td { time data-ms=(r.episode.start) { (crate::web::format::utc_time(Some(r.episode.start))) } }
                            td {
                                @match r.episode.end {
                                    Some(end) => time data-ms=(end) { (crate::web::format::utc_time(Some(end))) },
                                    None => strong { "ongoing" },
                                }
                            }
                            td { (duration(r.duration_ms)) }
                            td.wrap { (r.episode.cause) }
                            td.wrap {
                                @for a in &r.episode.actions {
                                    div { time data-ms=(a.at) { (crate::web::format::utc_time(Some(a.at))) } " " (a.text) }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

fn render(d: &IncidentsData, picked: &(Option<String>, Option<String>, Option<String>)) -> Markup {
    let (miner, kind, state) = picked;
    let kind = kind.as_deref().unwrap_or("");
    let state = state.as_deref().unwrap_or("");
    layout(
        "Incidents",
        html! {
            h1 { "Incidents" }
            form.filters method="get" action="/incidents" {
                label { "Miner " input type="text" name="miner" value=(miner.as_deref().unwrap_or("")) placeholder="any"; }
                label { "Kind "
                    select name="kind" {
                        option value="" selected[kind.is_empty()] { "any" }
                        @for k in IncidentKind::ALL {
                            option value=(k.as_str()) selected[kind == k.as_str()] { (k.label()) }
                        }
                    }
                }
                label { "State "
                    select name="state" {
                        option value="" selected[state.is_empty()] { "any" }
                        option value="open" selected[state == "open"] { "open" }
                        option value="closed" selected[state == "closed"] { "closed" }
                    }
                }
                button type="submit" { "Filter" }
            }
            (table(&d.incidents, true))
            h2 { "Availability" }
            p.muted { "Share of the time spent mining (a minute counts when the miner hashed in it); time before a miner was added does not count." }
            table.availability {
                thead { tr { th { "Miner" } th { "24 h" } th { "7 days" } th { "30 days" } } }
                tbody {
                    @for a in &d.availability {
                        tr {
                            td { a href={"/miners/" (a.miner_id)} { (a.miner) } }
                            td { (percent(a.pct_24h)) } td { (percent(a.pct_7d)) } td { (percent(a.pct_30d)) }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(kind: Option<&str>, state: Option<&str>, limit: Option<usize>) -> IncidentQuery {
        IncidentQuery {
            miner: Some(" demo-1 ".into()),
            kind: kind.map(Into::into),
            state: state.map(Into::into),
            limit,
        }
    }

    #[test]
    fn queries_are_validated() {
        let (f, miner, limit) = parse_query(&q(Some("pool_down"), Some("open"), None)).unwrap();
        assert_eq!(f.kind, Some(IncidentKind::PoolDown));
        assert_eq!(f.open, Some(true));
        assert_eq!(miner.as_deref(), Some("demo-1"));
        assert_eq!(limit, DEFAULT_LIMIT);
        assert!(parse_query(&q(Some("bored"), None, None))
            .unwrap_err()
            .contains("offline"));
        assert!(parse_query(&q(None, Some("ajar"), None)).is_err());
        assert!(parse_query(&q(None, None, Some(0))).is_err());
        assert_eq!(
            parse_query(&q(None, Some("closed"), None)).unwrap().0.open,
            Some(false)
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(40_000), "40 s");
        assert_eq!(duration(20 * 60_000), "20 min");
        assert_eq!(duration(125 * 60_000), "2 h 05 min");
        assert_eq!(duration(26 * 3_600_000), "1 d 2 h");
        assert_eq!(percent(Some(99.44)), "99.4 %");
        assert_eq!(percent(None), "—");
    }
}
