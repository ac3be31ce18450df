//! Server-rendered pages. maud escapes every interpolated value; nothing user-supplied is
//! ever wrapped in `PreEscaped`.

use actix_web::web;
use maud::{html, Markup};

use super::api::{blocking, herd};
use super::frame::{asset, layout};
use super::{charts, format, AppState};
use crate::clock::now_ms;
use crate::db::devices;
use crate::db::history;
use crate::herd::{HerdData, MinerView};

/// A miner's status as a coloured pill (the detail, if any, as its tooltip).
pub fn status_badge(m: &MinerView) -> Markup {
    let status = serde_json::to_value(m.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    html! {
        span class={"badge status-" (status)} title=[m.status_detail.as_deref()] { (status.replace('_', " ")) }
    }
}

/// Verdicts worth a word beside the badge: a miner can be "online" and mine for nothing.
pub fn why_words(m: &MinerView) -> Option<&'static str> {
    use crate::diagnosis::Verdict as V;
    Some(match m.diagnosis.verdict {
        V::WorkerRejected => "pool rejects worker",
        V::MiningUnreported => "mining, hashrate not reported",
        V::SetupPortal => "setup portal",
        V::NoWifi => "no Wi-Fi",
        V::PoolUnreachable => "pool unreachable",
        V::NotSubscribed => "not subscribed",
        V::NotHashing => "not hashing",
        V::Starting => "starting",
        V::Mining | V::Offline | V::Silent | V::Unknown => return None,
    })
}

/// How loud a miner's state is, most urgent first: 0 is broken (offline, port error), 1 is
/// stalled or silent, 2 is online but not mining (the "why not mining" chain found a cause),
/// 3 is fine. The dashboard and the health kiosk list miners in this order, so a failure is
/// the first thing on screen. Mirrored in assets/format.js (`problemRank`).
pub fn problem_rank(m: &MinerView) -> u8 {
    rank_of(m.status, why_words(m).is_some())
}

/// [`problem_rank`] from the status and whether the diagnosis names a cause.
pub fn rank_of(status: crate::model::status::Status, not_mining: bool) -> u8 {
    use crate::model::status::Status as S;
    match status {
        S::Offline | S::Error => 0,
        S::Stalled | S::NoData => 1,
        S::Online if not_mining => 2,
        S::Online => 3,
    }
}

/// The reason beside a problem's badge, in words: the diagnosis where it names a cause, else
/// the link's own detail ("cannot open /dev/ttyUSB0: …").
pub fn reason(m: &MinerView) -> Option<String> {
    why_words(m).map(str::to_owned).or_else(|| {
        (problem_rank(m) < 3)
            .then(|| m.status_detail.as_deref().map(short_detail))
            .flatten()
    })
}

/// A link detail without the device path it starts with ("/dev/ttyUSB0 not found: …" →
/// "port not found: …"): the path is on the miner's page, and a cut-off path says nothing.
/// Mirrored in assets/format.js (`shortDetail`).
pub fn short_detail(detail: &str) -> String {
    match detail
        .strip_prefix('/')
        .and_then(|rest| rest.split_once(' '))
    {
        Some((_, rest)) => format!("port {rest}"),
        None => detail.to_owned(),
    }
}

/// Miners problems first (see [`problem_rank`]), then by name.
pub fn problems_first(miners: &mut [MinerView]) {
    miners.sort_by(|a, b| {
        (problem_rank(a), a.name.to_lowercase()).cmp(&(problem_rank(b), b.name.to_lowercase()))
    });
}

fn why(m: &MinerView) -> Markup {
    html! {
        @if let Some(r) = reason(m) {
            " " small.reason title=(m.status_detail.as_deref().unwrap_or(&m.diagnosis.summary)) { (r) }
        }
    }
}

/// In sync / drifted (which keys) / unknown, as the herd table and its filter show it.
fn config_cell(m: &MinerView) -> Markup {
    use crate::fleet::Drift;
    html! {
        @match &m.fleet.drift {
            Drift::InSync => span.drift.drift-in_sync title="every desired key reads back as desired" { "in sync" },
            Drift::Unknown => span.drift.drift-unknown title="its configuration was never read" { "unknown" },
            Drift::Drifted { keys } => span.drift.drift-drifted title={ "differs from the desired state: " (keys.join(", ")) } { "drifted: " (keys.join(", ")) },
        }
    }
}

/// The pool's name, linked to the worker's page on the pool where it has one.
fn pool_cell(m: &MinerView) -> Markup {
    let name = m.pool.as_deref().unwrap_or("—");
    html! {
        @if let Some(url) = &m.fleet.pool_page {
            a.worker-link href=(url) rel="noopener noreferrer" target="_blank" title="this worker on the pool's own page" { (name) }
        } @else { (name) }
    }
}

fn miner_row(m: &MinerView, spark: Option<&Vec<f64>>) -> Markup {
    html! {
        tr data-id=(m.id) data-rank=(problem_rank(m)) data-drift=(m.fleet.drift.name()) {
            td data-k="name" data-label="Miner" { a href={ "/miners/" (m.id) } { (m.name) } }
            td data-k="status" data-label="Status" { (status_badge(m)) (why(m)) }
            td.num data-k="hashrate" data-label="Hashrate" { (format::hashrate(m.hashrate_khs)) }
            td data-k="spark" data-label="Last hour" { @if let Some(v) = spark { (charts::sparkline(v)) } }
            td.num data-k="avg24" data-label="24 h avg" { (format::hashrate(m.hashrate_avg_24h)) }
            td.num data-k="temp" data-label="Temp" { @if m.temperature_no_sensor { "no sensor" } @else { (format::temperature(m.temperature)) } }
            td.num data-k="shares" data-label="Shares" { (m.accepted) " / " (m.rejected) }
            td.num data-k="best" data-label="Best diff" { (format::difficulty(m.best_diff)) }
            td.num data-k="uptime" data-label="Uptime" { (format::uptime(m.uptime_secs)) }
            td data-k="seen" data-label="Last seen" data-ts=[m.last_seen] { "—" }
            td data-k="pool" data-label="Pool" { (pool_cell(m)) }
            td data-k="config" data-label="Config" { (config_cell(m)) }
        }
    }
}

fn totals(d: &HerdData) -> Markup {
    html! {
        section.cards #totals {
            div.card { div.label { "Miners online" } div.value data-t="online" { (d.totals.online) " / " (d.totals.miners) } }
            div.card { div.label { "Herd hashrate" } div.value data-t="hashrate" { (format::hashrate(Some(d.totals.hashrate_khs))) } }
            div.card { div.label { "Shares" } div.value data-t="shares" { (d.totals.shares) } }
            div.card { div.label { "Best difficulty" } div.value data-t="best" { (format::difficulty(d.totals.best_diff)) } }
            div.card { div.label { "Blocks found" } div.value data-t="blocks" { (d.totals.blocks_found) } }
        }
    }
}

/// Price, network difficulty and the herd's odds. Values that are not live are labelled with
/// their fetch time and a stale mark, never shown as if current.
fn market(d: &HerdData) -> Markup {
    let (p, n) = (&d.price, &d.network);
    let change_class = match p.change_24h_percent {
        Some(c) if c < 0.0 => "down",
        Some(_) => "up",
        None => "",
    };
    html! {
        section.cards #market {
            div.card #price-card {
                div.label { "BTC price" }
                div.value data-t="price" { (format::price(p.price, &p.currency)) }
                div.sub {
                    span data-t="change" class=(change_class) { (format::change(p.change_24h_percent)) }
                    " 24 h · "
                    (as_of("price", p.fetched_at, p.stale))
                }
                (fetch_error("price", p.last_error.as_deref()))
            }
            div.card #network-card {
                div.label { "Network difficulty" }
                div.value data-t="difficulty" { (n.difficulty.map_or_else(|| "—".into(), |v| format::difficulty(Some(v)))) }
                div.sub {
                    span data-t="net-hashrate" { (format::hashrate_hs(n.hashrate_hs)) }
                    " · block " span data-t="height" { (n.block_height.map_or("—".into(), |h| h.to_string())) }
                    " · "
                    (as_of("network", n.fetched_at, n.stale))
                }
                (fetch_error("network", n.last_error.as_deref()))
            }
            div.card #odds-card title="Expected wait = difficulty × 2^32 / herd hashrate; chance in t = 1 − exp(−hashrate·t / (difficulty × 2^32))" {
                div.label { "Herd block odds" }
                div.value data-t="odds-years" { (format::years(d.odds.map(|o| o.expected_years_to_block))) }
                div.sub {
                    "expected wait · chance today "
                    span data-t="odds-day" { (format::chance(d.odds.map(|o| o.chance_per_day))) }
                    " · this year "
                    span data-t="odds-year" { (format::chance(d.odds.map(|o| o.chance_per_year))) }
                }
                div.sub {
                    "at the network difficulty as of "
                    span data-l="odds-asof" data-ts=[n.fetched_at] { (format::utc_time(n.fetched_at)) }
                }
            }
        }
    }
}

/// The herd's best share, how far a block is, and its luck; kept live by assets/lottery.js.
fn lottery(d: &HerdData) -> Markup {
    use super::records::{COIN_FLIPS_HELP, LUCK_HELP};
    let l = &d.lottery;
    let top = l.records.first();
    html! {
        section.cards #lottery {
            div.card #best-share-card {
                div.label { "Herd best share" }
                div.value data-l="best" { (format::difficulty(l.figures.best_share)) }
                div.sub data-l="best-by" {
                    @if let Some(r) = top { (r.miner) " · " (format::utc_time(Some(r.at))) } @else { "none recorded yet" }
                }
            }
            div.card #flips-card title=(COIN_FLIPS_HELP) {
                div.label { "Coin flips from a block" }
                div.value data-l="flips" { (format::flips(l.figures.coin_flips)) }
                div.flips-bar title="log scale: the herd's best share on the way from difficulty 1 to the network difficulty" {
                    div.flips-fill #flips-fill data-p=(l.figures.progress_to_block.unwrap_or(0.0)) {}
                }
            }
            div.card #luck-card title=(LUCK_HELP) {
                div.label { "Herd luck" }
                div.value data-l="luck-24h" { (format::luck(l.figures.luck_24h.luck)) }
                div.sub {
                    "24 h · 30 d " span data-l="luck-30d" { (format::luck(l.figures.luck_30d.luck)) }
                    " · all " span data-l="luck-all" { (format::luck(l.figures.luck_all.luck)) }
                }
            }
        }
        p.help #lottery-help {
            (LUCK_HELP) " " (COIN_FLIPS_HELP) " "
            a href="/kiosk/records" { "Leaderboard" } " · " a href="/api/records" { "records as JSON" }
        }
    }
}

/// "as of <time>" (rewritten in local time by the script) and a stale mark.
fn as_of(feed: &str, fetched_at: Option<i64>, stale: bool) -> Markup {
    html! {
        span data-t={(feed) "-asof"} data-ts=[fetched_at] {
            @if fetched_at.is_some() { "as of " (format::utc_time(fetched_at)) } @else { "not fetched yet" }
        }
        " "
        span.stale-mark data-t={(feed) "-stale"} hidden[!(stale && fetched_at.is_some())] { "stale" }
    }
}

fn fetch_error(feed: &str, error: Option<&str>) -> Markup {
    html! {
        div.sub.fetch-error data-t={(feed) "-error"} title=(error.unwrap_or_default()) hidden[error.is_none()] {
            "⚠ " (error.unwrap_or_default())
        }
    }
}

/// Active alerts and recent history, filled (and kept live) by assets/alerts.js from
/// `/api/alerts`; hidden while there is nothing to show.
fn alerts_panel() -> Markup {
    html! {
        section #alerts hidden {
            h2 { "Alerts" }
            ul #alerts-active {}
            details #alerts-history-wrap {
                summary { "Recent history" }
                ul #alerts-history {}
            }
        }
    }
}

/// Shown while the database cannot be written (a full disk), kept current by assets/app.js:
/// miners then look stalled, and the owner must know why.
fn write_failure_banner(f: Option<&crate::db::actor::WriteFailure>) -> Markup {
    html! {
        p.stale #write-failure role="alert" hidden[f.is_none()] {
            "⚠ The database cannot be written since "
            span data-f="since" data-ts=[f.map(|f| f.since)] { (format::utc_time(f.map(|f| f.since))) }
            ": " span data-f="error" { (f.map(|f| f.error.as_str()).unwrap_or_default()) }
            ". New lines are kept in memory and retried (none are lost until the queue is full); miners look stalled meanwhile. Free disk space on the Shepherd's machine."
        }
    }
}

/// `GET /`: every miner with its status and figures, updated live by assets/app.js.
pub async fn dashboard(
    state: web::Data<AppState>,
    site: web::Query<super::hub::SiteFilter>,
) -> actix_web::Result<Markup> {
    let state = state.into_inner();
    // `--hub`: the other sites, below the local herd (a failed read must not take it down).
    let hub = if state.config.hub.enabled {
        let s = state.clone();
        let filter = site.into_inner().site.filter(|x| !x.is_empty());
        let f = filter.clone();
        blocking(move || super::hub::view(&s, f.as_deref()))
            .await
            .ok()
            .map(|v| (v, filter))
    } else {
        None
    };
    let pool = state.pool.clone();
    let spark_pool = state.pool.clone();
    let mut data = herd(&state).await?;
    problems_first(&mut data.miners);
    // Sparklines are decoration: a failed read leaves them empty rather than failing the page.
    let sparks =
        blocking(move || spark_pool.with(|c| history::sparklines(c, now_ms() / 1000 - 3600)))
            .await
            .unwrap_or_default();
    // The banner is a hint: a failed count must not take the dashboard down.
    let new_devices = blocking(move || pool.with(devices::count_new))
        .await
        .unwrap_or(0);
    Ok(layout(
        "Dashboard",
        html! {
            @if new_devices > 0 {
                p.notice #new-devices {
                    a href="/onboarding" {
                        (new_devices) " new device" @if new_devices > 1 { "s" } " — add "
                        @if new_devices > 1 { "them" } @else { "it" }
                    }
                }
            }
            (write_failure_banner(data.ingest.write_failure.as_ref()))
            (totals(&data))
            (alerts_panel())
            (lottery(&data))
            (market(&data))
            p.stale #stale hidden { "Live data unavailable — showing values as of " span #stale-since {} "." }
            @if data.miners.is_empty() {
                p.empty { "No miners yet. Add one with " code { "shepherd miners add --name NAME --port /dev/ttyUSB0" } " or start with " code { "shepherd run --demo" } "." }
            }
            @if !data.miners.is_empty() {
                p.filters {
                    label { "Configuration "
                        select #drift-filter {
                            option value="" { "all" }
                            option value="in_sync" { "in sync" }
                            option value="drifted" { "drifted" }
                            option value="unknown" { "unknown (never read)" }
                        }
                    }
                    " " a href="/fleet" { "profiles, desired state and reconcile" }
                }
            }
            div.table-wrap {
                table #herd data-server-time=(data.server_time) {
                    thead { tr {
                        th.sortable data-sort="name" { "Miner" } th.sortable data-sort="status" { "Status" }
                        th.num.sortable data-sort="hashrate" { "Hashrate" } th { "Last hour" }
                        th.num.sortable data-sort="avg24" { "24 h avg" }
                        th.num.sortable data-sort="temp" { "Temp" } th.num.sortable data-sort="shares" title="Pool-accepted shares from firmware 1.8.0; counted by the miner itself up to 1.7." { "Shares acc / rej" }
                        th.num.sortable data-sort="best" { "Best diff" }
                        th.num.sortable data-sort="uptime" { "Uptime" } th.sortable data-sort="seen" { "Last seen" }
                        th.sortable data-sort="pool" { "Pool" }
                        th.sortable data-sort="config" title="Desired configuration (/fleet) against what the miner last read back" { "Config" }
                    } }
                    tbody { @for m in &data.miners { (miner_row(m, sparks.get(&m.id))) } }
                }
            }
            @if let Some((v, f)) = &hub {
                (super::hub::section(v, f.as_deref()))
                script src=(asset("hub.js")) {}
            }
            script src=(asset("format.js")) {}
            script src=(asset("app.js")) {}
            script src=(asset("alerts.js")) {}
            script src=(asset("lottery.js")) {}
        },
    ))
}

/// The 404 page (or a one-line JSON error under `/api/`): says what was asked for and where
/// to go, instead of an empty body.
pub fn not_found_response(req: &actix_web::HttpRequest) -> actix_web::HttpResponse {
    let path = req.path();
    if path.starts_with("/api/") {
        return actix_web::HttpResponse::NotFound().json(serde_json::json!({
            "error": format!("no such endpoint: {path}"),
        }));
    }
    let page = layout(
        "Not found",
        html! {
            section.notfound {
                h1 { "404 — nothing here" }
                p { "There is no page at " code { (path) } "." }
                p { "Go back to the " a href="/" { "dashboard" } ", the " a href="/kiosk" { "kiosk views" } " or the " a href="/settings" { "settings" } "." }
            }
        },
    );
    actix_web::HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// Fallback service for every path no route matches.
pub async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    not_found_response(&req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::status::Status as S;

    #[test]
    fn details_lose_the_device_path() {
        assert_eq!(
            short_detail("/dev/ttyUSB0 not found: is the miner plugged in?"),
            "port not found: is the miner plugged in?"
        );
        assert_eq!(short_detail("connected, waiting"), "connected, waiting");
    }

    #[test]
    fn failures_rank_loudest() {
        let mut v = [
            (rank_of(S::Online, false), "a"),
            (rank_of(S::Stalled, false), "b"),
            (rank_of(S::Online, true), "c"),
            (rank_of(S::Offline, false), "d"),
            (rank_of(S::Error, false), "e"),
            (rank_of(S::NoData, false), "f"),
        ];
        v.sort();
        let names: Vec<_> = v.iter().map(|x| x.1).collect();
        assert_eq!(names, ["d", "e", "b", "f", "c", "a"]);
    }
}
