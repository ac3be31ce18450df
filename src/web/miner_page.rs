//! `/miners/<id>`: one miner's history charts, status changes and raw log lines, plus the
//! JSON behind them (`/api/miners/<id>/history`, `/api/miners/<id>/logs`). Bad parameters are
//! a 400 that says what is accepted; an unknown miner is a 404.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::api::blocking;
use super::frame::{error_page, layout};
use super::pages::status_badge;
use super::{charts, format, AppState};
use crate::clock::now_ms;
use crate::db::history::{self, Point, Range, StatusEvent};
use crate::db::logs::{self, LogLine};
use crate::db::reboots::{self, RebootRow};
use crate::herd::MinerView;

/// Log lines shown on the page.
const PAGE_LOG_LINES: usize = 200;
/// Status events shown on the page.
const PAGE_EVENTS: usize = 100;
/// Reboots shown on the page (each with its crash context, folded).
const PAGE_REBOOTS: usize = 20;
/// Incidents shown on the page.
const PAGE_INCIDENTS: usize = 20;

/// Query parameters, taken as text so a bad value gets our message rather than actix's.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    range: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

/// The asked-for range, `None` when none was asked for.
fn parse_range(q: &HistoryQuery) -> Result<Option<Range>, String> {
    match q.range.as_deref() {
        None | Some("") => Ok(None),
        Some(r) => Range::parse(r)
            .map(Some)
            .ok_or_else(|| format!("range {r:?} is not one of 1h, 24h, 7d, 30d")),
    }
}

/// The range a page opens on: 1 h while the miner has less than a day of data (a 24-h chart
/// of ten minutes is a squashed line at its right edge), else 24 h.
pub fn default_range(first_minute: Option<i64>, now_s: i64) -> Range {
    match first_minute {
        Some(t) if now_s - t >= 86_400 => Range::Day,
        _ => Range::Hour,
    }
}

/// Points whose bucket has ended: the bucket still filling would show as a dip at the end.
pub fn finished(points: &[Point], bucket_secs: i64, now_s: i64) -> Vec<Point> {
    points
        .iter()
        .filter(|p| p.t + bucket_secs.max(60) <= now_s)
        .cloned()
        .collect()
}

/// A status event kind in words.
pub fn event_words(kind: &str) -> String {
    match kind {
        "boot" => "booted".into(),
        "starting" => "starting up".into(),
        "crash" => "crashed".into(),
        "brownout" => "brownout (power too weak)".into(),
        "watchdog" => "watchdog reset (hung)".into(),
        "setup_mode" => "in setup portal".into(),
        "pool_connecting" => "connecting to the pool".into(),
        "pool_unreachable" => "pool unreachable".into(),
        "pool_timeout" => "pool timed out".into(),
        "wifi_connected" => "Wi-Fi connected".into(),
        "wifi_error" => "Wi-Fi error".into(),
        "spiffs_mount_failed" => "flash file system failed to mount".into(),
        "config_missing" => "configuration missing".into(),
        "config_parse_error" => "configuration unreadable".into(),
        "config_open_error" => "configuration cannot be opened".into(),
        "block_found" => "BLOCK FOUND".into(),
        "stratum_error" => "pool protocol error".into(),
        other => other.replace('_', " "),
    }
}

/// Status events (newest first) with repeats merged: a run of the same kind and detail is one
/// row with its count and the time of its oldest member.
pub fn merge_events(events: &[StatusEvent]) -> Vec<(StatusEvent, usize, i64)> {
    let mut out: Vec<(StatusEvent, usize, i64)> = Vec::new();
    for e in events {
        match out.last_mut() {
            Some((first, n, oldest)) if first.kind == e.kind && first.detail == e.detail => {
                *n += 1;
                *oldest = e.ts;
            }
            _ => out.push((e.clone(), 1, e.ts)),
        }
    }
    out
}

fn parse_id(raw: &str) -> Option<i64> {
    raw.parse().ok()
}

/// Everything the page shows.
struct PageData {
    name: String,
    range: Range,
    view: Option<MinerView>,
    points: Vec<Point>,
    events: Vec<StatusEvent>,
    logs: Vec<LogLine>,
    reboots: Vec<RebootRow>,
    lottery: super::records::MinerLotteryPage,
    /// Its incidents of the last 30 days, newest first.
    incidents: Vec<crate::db::incidents::IncidentRow>,
    /// Its availability.
    availability: Option<crate::db::incidents::Availability>,
}

fn load(
    state: &AppState,
    id: i64,
    range: Option<Range>,
) -> Result<Option<PageData>, crate::db::DbError> {
    let now = now_ms();
    let herd = state.herd.current()?;
    state.pool.with(|c| {
        let Some(name) = history::miner_name(c, id)? else {
            return Ok(None);
        };
        let view = herd.miners.iter().find(|m| m.id == id).cloned();
        let range = match range {
            Some(r) => r,
            None => default_range(
                c.query_row(
                    "SELECT min(minute) FROM miner_minutes WHERE miner_id = ?1",
                    [id],
                    |r| r.get::<_, Option<i64>>(0),
                )?,
                now / 1000,
            ),
        };
        Ok(Some(PageData {
            name,
            range,
            view,
            points: history::series(c, id, now / 1000 - range.secs(), range.bucket_secs())?,
            events: history::status_history(c, id, PAGE_EVENTS)?,
            logs: logs::newest(c, id, None, PAGE_LOG_LINES)?,
            reboots: reboots::recent(c, id, PAGE_REBOOTS, true)?,
            lottery: super::records::miner_lottery_page(c, &state.config.network, id, now)?,
            incidents: crate::db::incidents::list(
                c,
                now,
                &crate::db::incidents::Filter {
                    miner_id: Some(id),
                    ..Default::default()
                },
                PAGE_INCIDENTS,
            )?,
            availability: crate::db::incidents::availability(c, now, Some(id))?
                .into_iter()
                .next(),
        }))
    })
}

/// `GET /miners/{id}?range=1h|24h|7d|30d`
pub async fn page(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> actix_web::Result<HttpResponse> {
    let Some(id) = parse_id(&id) else {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "No such miner",
            "Miner ids are numbers; pick a miner on the dashboard.",
        ));
    };
    let range = match parse_range(&query) {
        Ok(r) => r,
        Err(message) => return Ok(error_page(StatusCode::BAD_REQUEST, "Bad range", &message)),
    };
    let st = state.into_inner();
    match blocking(move || load(&st, id, range)).await? {
        None => Ok(error_page(
            StatusCode::NOT_FOUND,
            "No such miner",
            &format!("There is no miner with id {id}. It may have been removed in Settings."),
        )),
        Some(data) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(render(id, data.range, &data).into_string())),
    }
}

fn render(id: i64, range: Range, d: &PageData) -> Markup {
    let now = now_ms() / 1000;
    let x = ((now - range.secs()) as f64, now as f64);
    let ago = match range {
        Range::Hour => "1 h ago",
        Range::Day => "24 h ago",
        Range::Week => "7 days ago",
        Range::Month => "30 days ago",
    };
    let ends = (ago, "now");
    let points = finished(&d.points, range.bucket_secs(), now);
    let series = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        points.iter().map(|p| (p.t as f64, f(p))).collect()
    };
    layout(
        &d.name,
        html! {
            div.page-head {
                h1 { (d.name) }
                @if let Some(v) = &d.view {
                    (status_badge(v))
                    span.muted { " " (format::hashrate(v.hashrate_khs)) " · " (format::temperature(v.temperature)) " · uptime " (format::uptime(v.uptime_secs)) }
                }
                a href={ "/miners/manage/" (id) } { "Configuration and backups →" }
            }
            @if let Some(v) = &d.view { (diagnosis_section(v)) (counters_section(v)) }
            nav.ranges aria-label="Chart range" {
                @for r in Range::ALL {
                    a href={ "/miners/" (id) "?range=" (r.as_str()) } class=[(r == range).then_some("active")] { (r.as_str()) }
                }
            }
            div.charts {
                (charts::line_chart("Hashrate", &series(|p| p.hashrate_khs), x, ends, true, |v| format::hashrate(Some(v))))
                (charts::line_chart("Temperature", &series(|p| p.temperature), x, ends, false, |v| format!("{v:.0} °C")))
                (charts::line_chart("Shares", &series(|p| Some(p.shares as f64)), x, ends, true, |v| format!("{v:.0}")))
            }
            (super::records::miner_section(&d.lottery))
            (reboots_section(&d.reboots))
            h2 { "Incidents " span.muted { "(last 30 days; " a href={ "/incidents?miner=" (id) } { "all" } ")" } }
            @if let Some(a) = &d.availability {
                p { "Mining " (super::incidents::percent(a.pct_24h)) " of the last 24 h, "
                    (super::incidents::percent(a.pct_7d)) " of 7 days, "
                    (super::incidents::percent(a.pct_30d)) " of 30 days." }
            }
            (super::incidents::table(&d.incidents, false))
            h2 { "Status history" }
            @if d.events.is_empty() {
                p.empty { "No boots, crashes, pool or Wi-Fi changes recorded yet." }
            } @else {
                div.table-wrap { table.events {
                    thead { tr { th { "When (local time)" } th { "What" } th { "Detail" } } }
                    tbody { @for (e, n, oldest) in merge_events(&d.events) {
                        tr class={ "ev-" (e.kind) } {
                            td {
                                @if n > 1 {
                                    span data-localtime=(oldest) { (format::utc_time(Some(oldest))) } " – "
                                }
                                span data-localtime=(e.ts) { (format::utc_time(Some(e.ts))) }
                            }
                            td { (event_words(&e.kind)) @if n > 1 { " " span.muted { "×" (n) } } }
                            td.detail { (e.detail.as_deref().unwrap_or("")) }
                        }
                    } }
                } }
            }
            h2 { "Recent log lines " span.muted { "(newest first; older ones: " a href={ "/api/miners/" (id) "/logs?limit=1000" } { "JSON" } ")" } }
            @if d.logs.is_empty() {
                p.empty { "No lines received yet." }
            } @else {
                pre.log { @for l in &d.logs { (format::utc_time(Some(l.ts))) "  " (l.line) "\n" } }
            }
            script src=(super::frame::asset("localtime.js")) {}
        },
    )
}

/// "Why is it (not) mining": the verdict, the signal it rests on, and the chain.
fn diagnosis_section(v: &MinerView) -> Markup {
    let d = &v.diagnosis;
    let verdict = serde_json::to_value(d.verdict)
        .ok()
        .and_then(|x| x.as_str().map(str::to_owned))
        .unwrap_or_default();
    html! {
        section #diagnosis {
            h2 { "Why (not) mining" }
            p class={ "verdict v-" (verdict) } { strong { (verdict.replace('_', " ")) } " — " (d.summary) }
            p.muted { "Rests on: " (d.basis) }
            div.table-wrap { table.chain {
                thead { tr { th { "Link" } th { "State" } th { "Last line that decides it" } th { "Age" } th { "Why" } } }
                tbody { @for l in &d.links {
                    tr {
                        td { (l.link.label()) }
                        td class={ "state-" (l.state) } { (l.state) }
                        td.line { (l.line.as_deref().unwrap_or("—")) }
                        td.num { @if let Some(a) = l.age_secs { (format::uptime(Some(a))) " ago" } @else { "—" } }
                        td { (l.reason.as_deref().unwrap_or("")) }
                    }
                } }
            } }
        }
    }
}

/// What the firmware's counters mean on this miner.
fn counters_section(v: &MinerView) -> Markup {
    // An AxeOS miner counts the pool's answers and keeps nothing across a reboot
    // (ESP-Miner's system module holds its counters in RAM).
    let axeos = v.kind == "axeos";
    let shares = match v.shares_meaning.as_deref() {
        _ if axeos => "accepted by the pool (AxeOS counts the pool's answers since boot)",
        Some("pool_accepted") => "accepted by the pool (firmware 1.8.0 on)",
        Some("local") => {
            "counted by the miner itself (firmware up to 1.7), not confirmed by the pool"
        }
        _ => "firmware version not known yet",
    };
    let restores = match v.stats_restored {
        _ if axeos => "no — AxeOS starts its counters at zero on every boot",
        Some(true) => "yes — its counters resume after a reboot; the first values after each reboot are a baseline, not new shares or blocks",
        Some(false) => "no — its counters restart at zero on every boot",
        None => "not known yet",
    };
    html! {
        section #counters {
            h2 { "Counters" }
            dl.facts {
                dt { "Uptime since boot" } dd { (format::uptime(v.uptime_secs)) }
                @if !axeos { dt { "Time mining (firmware, lifetime where restored)" } dd { (format::uptime(v.time_mining_secs)) } }
                dt { "Restores stats from NVS" } dd { (restores) }
                dt { "Shares" } dd { (v.accepted) " — " (shares) }
                dt { "Blocks found while watched" } dd { (v.blocks_found)
                    @if let Some(b) = v.blocks_reported { " (the firmware says " (b) ")" } }
                dt { "Temperature" } dd { @if v.temperature_no_sensor { "no sensor (a flat ~53 °C is an uncalibrated classic ESP32 sensor)" } @else { (format::temperature(v.temperature)) } }
                @if let Some(f) = &v.firmware_family { dt { "Firmware" } dd { (f) @if let Some(ver) = &v.firmware { " " (ver) } } }
                @if let Some(disp) = &v.display { dt { "Display driver" } dd { (disp) } }
                dt { "Reboots" } dd { (v.restarts) " seen, " (v.reboots_last_hour) " in the last hour" }
            }
        }
    }
}

/// The reboot history, newest first, each with the raw lines before it.
fn reboots_section(rows: &[RebootRow]) -> Markup {
    html! {
        h2 { "Reboots" }
        @if rows.is_empty() {
            p.empty { "No reboots recorded." }
        } @else {
            div.table-wrap { table.reboots {
                thead { tr { th { "When" } th { "Cause" } th { "ROM reason" } th { "Up before" } th { "Detail and the lines before it" } } }
                tbody { @for r in rows {
                    tr {
                        td { span data-localtime=(r.at) { (format::utc_time(Some(r.at))) } }
                        td { (r.cause.replace('_', " ")) }
                        td { (r.reset_reason.as_deref().unwrap_or("—")) }
                        td.num { (format::uptime(r.uptime_before_secs)) }
                        td.detail {
                            (r.detail.as_deref().unwrap_or(""))
                            @if let Some(c) = r.context.as_deref().filter(|c| !c.is_empty()) {
                                details { summary { (c.lines().count()) " lines before it" } pre.context { (c) } }
                            }
                        }
                    }
                } }
            } }
        }
    }
}

/// `GET /api/miners/{id}/reboots`: the reboot history (newest first, at most 100), each
/// with the raw lines before it in `context`.
pub async fn reboots_json(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> actix_web::Result<HttpResponse> {
    let Some(id) = parse_id(&id) else {
        return Ok(json_error(StatusCode::NOT_FOUND, "no such miner"));
    };
    let pool = state.pool.clone();
    let found = blocking(move || {
        pool.with(|c| match history::miner_name(c, id)? {
            None => Ok(None),
            Some(_) => reboots::recent(c, id, 100, true).map(Some),
        })
    })
    .await?;
    Ok(match found {
        None => json_error(StatusCode::NOT_FOUND, &format!("no miner with id {id}")),
        Some(rows) => {
            HttpResponse::Ok().json(serde_json::json!({ "miner_id": id, "reboots": rows }))
        }
    })
}

/// `GET /api/miners/{id}/history?range=…`
pub async fn history_json(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> actix_web::Result<HttpResponse> {
    let Some(id) = parse_id(&id) else {
        return Ok(json_error(StatusCode::NOT_FOUND, "no such miner"));
    };
    let range = match parse_range(&query) {
        Ok(r) => r.unwrap_or(Range::Day),
        Err(message) => return Ok(json_error(StatusCode::BAD_REQUEST, &message)),
    };
    let pool = state.pool.clone();
    let since = now_ms() / 1000 - range.secs();
    let found = blocking(move || {
        pool.with(|c| match history::miner_name(c, id)? {
            None => Ok(None),
            Some(_) => history::series(c, id, since, range.bucket_secs()).map(Some),
        })
    })
    .await?;
    Ok(match found {
        None => json_error(StatusCode::NOT_FOUND, &format!("no miner with id {id}")),
        Some(points) => HttpResponse::Ok().json(serde_json::json!({
            "miner_id": id,
            "range": range,
            "bucket_secs": range.bucket_secs(),
            "points": points,
        })),
    })
}

/// Checks `before` and `limit` (1..=1000, default 200).
fn parse_page(q: &HistoryQuery) -> Result<(Option<i64>, usize), String> {
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(
            b.parse::<i64>()
                .map_err(|_| format!("before {b:?} must be a log line id (a whole number)"))?,
        ),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 200,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| format!("limit {l:?} must be a whole number from 1 to 1000"))?,
    };
    Ok((before, limit))
}

/// `GET /api/miners/{id}/logs?before=<id>&limit=<n>`: newest first; page with the last id.
pub async fn logs_json(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> actix_web::Result<HttpResponse> {
    let Some(id) = parse_id(&id) else {
        return Ok(json_error(StatusCode::NOT_FOUND, "no such miner"));
    };
    let (before, limit) = match parse_page(&query) {
        Ok(p) => p,
        Err(message) => return Ok(json_error(StatusCode::BAD_REQUEST, &message)),
    };
    let pool = state.pool.clone();
    let found = blocking(move || {
        pool.with(|c| match history::miner_name(c, id)? {
            None => Ok(None),
            Some(_) => logs::newest(c, id, before, limit).map(Some),
        })
    })
    .await?;
    Ok(match found {
        None => json_error(StatusCode::NOT_FOUND, &format!("no miner with id {id}")),
        Some(lines) => {
            let next = (lines.len() == limit)
                .then(|| lines.last().map(|l| l.id))
                .flatten();
            HttpResponse::Ok().json(serde_json::json!({
                "miner_id": id,
                "lines": lines,
                "next_before": next,
            }))
        }
    })
}

/// `GET /api/sparklines`: every miner's per-minute hashrate over the last hour, by id.
pub async fn sparklines_json(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    let since = now_ms() / 1000 - 3600;
    let all = blocking(move || pool.with(|c| history::sparklines(c, since))).await?;
    Ok(super::api::fresh_json(&all))
}

/// `GET /api/block_templates`: the herd's block templates since boot (for the homage kiosk).
pub async fn block_templates_json(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    let n = blocking(move || pool.with(history::block_templates)).await?;
    Ok(super::api::fresh_json(
        &serde_json::json!({ "block_templates": n }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(range: Option<&str>, before: Option<&str>, limit: Option<&str>) -> HistoryQuery {
        HistoryQuery {
            range: range.map(Into::into),
            before: before.map(Into::into),
            limit: limit.map(Into::into),
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert_eq!(parse_range(&q(None, None, None)), Ok(None));
        assert_eq!(
            parse_range(&q(Some("30d"), None, None)),
            Ok(Some(Range::Month))
        );
        assert!(parse_range(&q(Some("1y"), None, None))
            .unwrap_err()
            .contains("1h, 24h"));
        assert_eq!(parse_page(&q(None, None, None)), Ok((None, 200)));
        assert_eq!(
            parse_page(&q(None, Some("17"), Some("1000"))),
            Ok((Some(17), 1000))
        );
        for bad in ["0", "1001", "-1", "x"] {
            assert!(parse_page(&q(None, None, Some(bad)))
                .unwrap_err()
                .contains("1 to 1000"));
        }
        assert!(parse_page(&q(None, Some("x"), None)).is_err());
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    fn ev(ts: i64, kind: &str) -> StatusEvent {
        StatusEvent {
            id: ts,
            ts,
            kind: kind.into(),
            detail: None,
        }
    }

    #[test]
    fn opens_on_one_hour_until_a_day_of_data() {
        let now = 1_000_000;
        assert_eq!(default_range(None, now), Range::Hour);
        assert_eq!(default_range(Some(now - 3600), now), Range::Hour);
        assert_eq!(default_range(Some(now - 86_400), now), Range::Day);
    }

    #[test]
    fn the_unfinished_minute_is_dropped() {
        let p = |t| Point {
            t,
            hashrate_khs: Some(1.0),
            temperature: None,
            shares: 0,
        };
        let kept = finished(&[p(60), p(120), p(180)], 60, 200);
        assert_eq!(kept.iter().map(|p| p.t).collect::<Vec<_>>(), [60, 120]);
    }

    #[test]
    fn repeated_events_merge_and_read_as_words() {
        let merged = merge_events(&[
            ev(5, "pool_unreachable"),
            ev(4, "pool_unreachable"),
            ev(3, "pool_unreachable"),
            ev(2, "boot"),
            ev(1, "pool_unreachable"),
        ]);
        let rows: Vec<_> = merged.iter().map(|(e, n, o)| (e.ts, *n, *o)).collect();
        assert_eq!(rows, [(5, 3, 3), (2, 1, 2), (1, 1, 1)]);
        assert_eq!(event_words("pool_unreachable"), "pool unreachable");
        assert_eq!(event_words("brownout"), "brownout (power too weak)");
        assert_eq!(event_words("new_thing"), "new thing");
    }
}
