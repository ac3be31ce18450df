//! The hub's part of the dashboard and `/api/hub`: every other site on the broker, its
//! freshness, and its miners (read-only: their names link to their own Shepherd when it
//! publishes its address). A site whose last will fired is shown offline with the age of its
//! last figures, never as live.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::blocking;
use super::{format, AppState};
use crate::clock::now_ms;
use crate::db::hub::{self as sql, RemoteEvent, RemoteMiner, SiteRow};
use crate::hub::{freshness, gaps, Freshness};

/// `?site=` on `/` and `/api/hub`: one site only.
#[derive(Debug, Default, Deserialize)]
pub struct SiteFilter {
    /// The site's name; empty or absent means every site.
    #[serde(default)]
    pub site: Option<String>,
}

impl SiteFilter {
    fn get(&self) -> Option<&str> {
        self.site.as_deref().filter(|s| !s.is_empty())
    }
}

/// A site as pages show it.
#[derive(Debug, Serialize)]
pub struct SiteView {
    /// What the broker and its messages say.
    #[serde(flatten)]
    pub row: SiteRow,
    /// Live, stale or offline.
    pub freshness: Freshness,
    /// Seconds since its last figures (null: none received yet).
    pub age_secs: Option<i64>,
}

/// `/api/hub`: sites, remote miners (with their site), recent events, and the hub's gaps.
#[derive(Debug, Serialize)]
pub struct HubView {
    /// Schema of this document (the MQTT schema it carries).
    pub schema: u64,
    /// This Shepherd's own site (its miners are in `/api/herd_data`).
    pub site: String,
    /// Server clock (Unix ms).
    pub server_time: i64,
    /// Every other site heard of.
    pub sites: Vec<SiteView>,
    /// Remote miners (of the filtered site, if any).
    pub miners: Vec<RemoteMiner>,
    /// The newest 50 events.
    pub events: Vec<RemoteEvent>,
    /// `[from, to]` (Unix ms) when the hub was not listening: remote history has holes there.
    pub gaps: Vec<(i64, i64)>,
}

/// Reads the hub's tables into the view.
pub fn view(state: &AppState, filter: Option<&str>) -> Result<HubView, crate::db::DbError> {
    let now = now_ms();
    let stale_ms =
        i64::try_from(state.config.hub.stale_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let (sites, miners, events, runs) = state.pool.with(|c| {
        Ok((
            sql::sites(c)?,
            sql::miners(c, filter)?,
            sql::events(c, filter, 50)?,
            sql::runs(c)?,
        ))
    })?;
    let sites = sites
        .into_iter()
        .map(|row| SiteView {
            freshness: freshness(row.online, row.last_heard, now, stale_ms),
            age_secs: (row.last_heard > 0).then(|| now.saturating_sub(row.last_heard) / 1000),
            row,
        })
        .collect();
    Ok(HubView {
        schema: crate::hub::SCHEMA,
        site: state.config.site.effective_name(),
        server_time: now,
        sites,
        miners,
        events,
        gaps: gaps(&runs),
    })
}

/// `GET /api/hub[?site=NAME]`
pub async fn api(
    state: web::Data<AppState>,
    q: web::Query<SiteFilter>,
) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let filter = q.into_inner();
    let v = blocking(move || view(&state, filter.get())).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// `GET /api/hub/history?site=NAME&miner=ID`: a remote miner's points (a minute each) over
/// the last 24 h, and the hub's gaps in that window.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// The site.
    pub site: String,
    /// The miner's id at its site.
    pub miner: i64,
}

/// `GET /api/hub/history`
pub async fn history(
    state: web::Data<AppState>,
    q: web::Query<HistoryQuery>,
) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    let q = q.into_inner();
    let since = now_ms() / 1000 - 86_400;
    let (points, runs) = blocking(move || {
        pool.with(|c| Ok((sql::history(c, &q.site, q.miner, since)?, sql::runs(c)?)))
    })
    .await?;
    let gaps: Vec<(i64, i64)> = gaps(&runs)
        .into_iter()
        .filter(|g| g.1 / 1000 >= since)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "points": points.iter().map(|(minute, status, hashrate, temperature)| serde_json::json!({
            "at": minute * 1000, "status": status, "hashrate": hashrate, "temperature": temperature,
        })).collect::<Vec<_>>(),
        "gaps": gaps,
    })))
}

/// A remote miner's series for a chart: `(t, value)` oldest first, with a break (`None`)
/// where the hub was not running (`gaps`, Unix ms) and where nothing arrived for longer than
/// `max_step` seconds, so a hole shows as a hole and never as a line across it.
pub fn with_breaks(
    points: &[(i64, Option<f64>)],
    gaps: &[(i64, i64)],
    max_step: i64,
) -> Vec<(f64, Option<f64>)> {
    let mut out = Vec::with_capacity(points.len());
    let mut prev: Option<i64> = None;
    for &(t, v) in points {
        if let Some(p) = prev {
            let hub_away = gaps.iter().any(|g| g.0 / 1000 < t && g.1 / 1000 > p);
            if hub_away || t - p > max_step {
                out.push(((p + 1) as f64, None));
            }
        }
        out.push((t as f64, v));
        prev = Some(t);
    }
    out
}

/// `GET /hub/miner?site=NAME&miner=ID`: a remote miner's last 24 h as the hub saw it, with
/// the hub's own gaps marked, and the way to its own Shepherd (read-only here).
pub async fn miner_page(
    state: web::Data<AppState>,
    q: web::Query<HistoryQuery>,
) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    let q = q.into_inner();
    let now = now_ms();
    let since = now / 1000 - 86_400;
    let (site, miner, points, runs) = {
        let site = q.site.clone();
        blocking(move || {
            pool.with(|c| {
                let sites = sql::sites(c)?;
                let miner = sql::miners(c, Some(&site))?
                    .into_iter()
                    .find(|m| m.id == q.miner);
                Ok((
                    sites.into_iter().find(|s| s.site == site),
                    miner,
                    sql::history(c, &site, q.miner, since)?,
                    sql::runs(c)?,
                ))
            })
        })
        .await?
    };
    let Some(m) = miner else {
        return Ok(HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(
                super::frame::layout(
                    "Not found",
                    html! { p { "No miner " (q.miner) " at site " (q.site) " is known to this hub. " a href="/" { "Back to the dashboard" } } },
                )
                .into_string(),
            ));
    };
    let gaps: Vec<(i64, i64)> = gaps(&runs)
        .into_iter()
        .filter(|g| g.1 / 1000 >= since)
        .collect();
    let series = |f: fn(&sql::HistoryPoint) -> Option<f64>| {
        let raw: Vec<(i64, Option<f64>)> = points.iter().map(|p| (p.0, f(p))).collect();
        with_breaks(&raw, &gaps, 300)
    };
    let x = (since as f64, (now / 1000) as f64);
    let ends = ("24 h ago", "now");
    let url = site.as_ref().and_then(|s| s.url.as_deref());
    let page = super::frame::layout(
        &m.name,
        html! {
            div.page-head {
                h1 { (m.name) " " span.muted { "at " (m.site) } }
                @if let Some(u) = url {
                    a href={ (u.trim_end_matches('/')) "/miners/" (m.id) } rel="noopener" { "Open it on its own Shepherd (actions are there) →" }
                } @else {
                    span.muted { "Its site publishes no address ([site] url): act on it at its own Shepherd." }
                }
            }
            p.muted { "Read-only: the history below is what reached this hub, a point a minute." }
            div.charts {
                (super::charts::line_chart("Hashrate", &series(|p| p.2), x, ends, true, |v| format::hashrate(Some(v))))
                (super::charts::line_chart("Temperature", &series(|p| p.3), x, ends, false, |v| format!("{v:.0} °C")))
            }
            @if !gaps.is_empty() {
                h2 { "Gaps" }
                p { "The hub was not running (nothing was received) from:" }
                ul { @for g in &gaps { li { (format::utc_time(Some(g.0))) " to " (format::utc_time(Some(g.1))) } } }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.into_string()))
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn freshness_badge(s: &SiteView) -> Markup {
    let age = s.age_secs.map_or_else(
        || "no figures received yet".to_owned(),
        |a| format!("last heard {} ago", age_words(a)),
    );
    match s.freshness {
        Freshness::Live => html! { span.badge.status-online { "live" } },
        Freshness::Stale => html! {
            span.badge.status-stalled title="It says online but nothing arrived lately (a broken bridge?)" { "stale" }
            " " span.muted { (age) }
        },
        Freshness::Offline => html! {
            span.badge.status-offline { "offline" }
            " " span.muted { (age) }
        },
    }
}

/// The dashboard's "Sites" section: each site, then every remote miner with its site,
/// filtered by `?site=`.
pub fn section(v: &HubView, filter: Option<&str>) -> Markup {
    html! {
        section #hub-sites {
            h2 { "Sites" }
            p.muted { "This site is " strong { (v.site) } ": its miners are above, live. Miners below are read-only here; their names open them on their own Shepherd." }
            @if v.sites.is_empty() {
                p.empty { "No other site has published on the broker yet. Each site needs " code { "[mqtt] enabled = true" } " and its broker bridged to this one (see the README, “Several sites”)." }
            }
            nav.site-filter {
                "Show: "
                @if filter.is_none() { strong { "all sites" } } @else { a href="/" { "all sites" } }
                @for s in &v.sites {
                    " · "
                    @if filter == Some(s.row.site.as_str()) { strong { (s.row.site) } }
                    @else { a href={ "/?site=" (urlencode(&s.row.site)) } { (s.row.site) } }
                }
            }
            div.table-wrap {
                table #hub-site-table {
                    thead { tr {
                        th { "Site" } th { "State" } th.num { "Miners" } th.num { "Online" }
                        th.num { "Hashrate" } th { "Its Shepherd" }
                    } }
                    tbody {
                        @for s in &v.sites {
                            tr data-site=(s.row.site) data-freshness=(freshness_word(s.freshness)) {
                                td { (s.row.site) }
                                td { (freshness_badge(s)) }
                                td.num { (num(&s.row.herd, "miners").map(|n| n.to_string()).unwrap_or_default()) }
                                td.num { (num(&s.row.herd, "online").map(|n| n.to_string()).unwrap_or_default()) }
                                // An offline site's last figures are not its hashrate now.
                                td.num { @if s.row.online { (format::hashrate(num(&s.row.herd, "hashrate"))) } @else { "—" } }
                                td { @if let Some(u) = &s.row.url { a href=(u) rel="noopener" { (u) } } @else { span.muted { "no address published" } } }
                            }
                        }
                    }
                }
            }
            @if !v.miners.is_empty() {
                h3 { "Miners at other sites (read-only)" }
                div.table-wrap {
                    table #hub-miners {
                        thead { tr {
                            th { "Site" } th { "Miner" } th { "Status" } th.num { "Hashrate" }
                            th.num { "Temp" } th.num { "Shares acc / rej" } th.num { "Best diff" }
                            th { "As of" } th { "History" }
                        } }
                        tbody { @for m in &v.miners { (miner_row(v, m)) } }
                    }
                }
            }
        }
    }
}

fn freshness_word(f: Freshness) -> &'static str {
    match f {
        Freshness::Live => "live",
        Freshness::Stale => "stale",
        Freshness::Offline => "offline",
    }
}

fn miner_row(v: &HubView, m: &RemoteMiner) -> Markup {
    let site = v.sites.iter().find(|s| s.row.site == m.site);
    let fresh = site.map_or(Freshness::Offline, |s| s.freshness);
    let url = site.and_then(|s| s.row.url.as_deref());
    let st = &m.state;
    let status = st
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("no_data");
    let shares = format!(
        "{} / {}",
        num(st, "shares_accepted").unwrap_or(0.0),
        num(st, "shares_rejected").unwrap_or(0.0)
    );
    html! {
        tr data-site=(m.site) class=[(fresh != Freshness::Live).then_some("not-live")] {
            td { (m.site) }
            td { @if let Some(u) = url { a href={ (u.trim_end_matches('/')) "/miners/" (m.id) } rel="noopener" title="Open it on its own Shepherd (actions are done there)" { (m.name) } } @else { (m.name) } }
            td {
                @if fresh == Freshness::Live { span class={ "badge status-" (status) } { (status) } }
                @else { span.badge.status-offline { "site " (freshness_word(fresh)) } }
            }
            td.num { (format::hashrate(num(st, "hashrate"))) }
            td.num { (format::temperature(num(st, "temperature"))) }
            td.num { (shares) }
            td.num { (format::difficulty(num(st, "best_difficulty"))) }
            td { (format::utc_time(Some(m.at))) }
            td { a href={ "/hub/miner?site=" (urlencode(&m.site)) "&miner=" (m.id) } { "24 h" } }
        }
    }
}

/// "45 s", "5 min", "2 h 03 min", "3 d 4 h": how long ago, in words.
pub fn age_words(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Percent-encodes a site name for a query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn site(name: &str, f: Freshness, url: Option<&str>) -> SiteView {
        SiteView {
            row: SiteRow {
                site: name.into(),
                online: f != Freshness::Offline,
                url: url.map(str::to_owned),
                version: None,
                herd: json!({"miners": 2, "online": 1, "hashrate": 100.0}),
                status_at: 0,
                last_heard: 1,
            },
            freshness: f,
            age_secs: Some(300),
        }
    }

    fn view() -> HubView {
        HubView {
            schema: 1,
            site: "home".into(),
            server_time: 0,
            sites: vec![
                site("barn", Freshness::Live, Some("http://barn:8080/")),
                site("shed <b>", Freshness::Offline, None),
            ],
            miners: vec![
                RemoteMiner {
                    site: "barn".into(),
                    id: 4,
                    name: "m4".into(),
                    state: json!({"status": "online", "hashrate": 50.0}),
                    at: 0,
                },
                RemoteMiner {
                    site: "shed <b>".into(),
                    id: 1,
                    name: "m1".into(),
                    state: json!({"status": "online", "hashrate": 50.0}),
                    at: 0,
                },
            ],
            events: vec![],
            gaps: vec![],
        }
    }

    #[test]
    fn an_offline_site_is_never_shown_live_and_links_go_to_its_own_shepherd() {
        let html = section(&view(), None).into_string();
        assert!(
            html.contains("href=\"http://barn:8080/miners/4\""),
            "{html}"
        );
        // The offline site's miner says so instead of its last status.
        let shed = html.split("data-site=\"shed &lt;b&gt;\"").nth(2).unwrap();
        assert!(
            shed.contains("site offline") && !shed.contains("status-online"),
            "{shed}"
        );
        assert!(html.contains("last heard 5 min ago"), "{html}");
        assert!(html.contains("/?site=shed%20%3Cb%3E"));
        assert!(!html.contains("<b>"), "names are escaped");
    }

    #[test]
    fn history_breaks_where_the_hub_was_away_or_nothing_came() {
        let pts = [
            (60, Some(1.0)),
            (120, Some(2.0)),
            (1_000, Some(3.0)),
            (1_060, None),
            (1_120, Some(4.0)),
        ];
        // The hub away between 130 s and 900 s; nothing for more than 300 s is a break too.
        let s = with_breaks(&pts, &[], 300);
        assert_eq!(s.iter().filter(|p| p.1.is_none()).count(), 2, "{s:?}");
        assert_eq!(s[2], (121.0, None));
        let s = with_breaks(&pts[..2], &[(90_000, 100_000)], 300);
        assert_eq!(s, vec![(60.0, Some(1.0)), (61.0, None), (120.0, Some(2.0))]);
    }

    #[test]
    fn ages_read_as_words() {
        assert_eq!(age_words(-3), "0 s");
        assert_eq!(age_words(59), "59 s");
        assert_eq!(age_words(300), "5 min");
        assert_eq!(age_words(3 * 3600 + 5 * 60), "3 h 05 min");
        assert_eq!(age_words(2 * 86_400 + 7200), "2 d 2 h");
    }
}
