//! Server-rendered pages. maud escapes every interpolated value; nothing user-supplied is
//! ever wrapped in `PreEscaped`.

use actix_web::web;
use maud::{html, Markup, DOCTYPE};

use super::api::{blocking, herd, HerdData};
use super::{charts, format, AppState};
use crate::clock::now_ms;
use crate::db::devices;
use crate::db::history;
use crate::db::queries::MinerView;

/// Asset URL with the version, so a kiosk that runs for months picks up new files after an
/// upgrade.
pub fn asset(name: &str) -> String {
    format!("/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// The frame every page shares.
pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · The Shepherd" }
                link rel="icon" href=(asset("favicon.svg"));
                link rel="stylesheet" href=(asset("app.css"));
                // Loaded before the body so a saved theme applies without a flash.
                script src=(asset("theme.js")) {}
            }
            body {
                header.topbar {
                    a.brand href="/" { img src=(asset("favicon.svg") ) alt="" width="28" height="28"; " The Shepherd" }
                    nav {
                        a href="/" { "Dashboard" }
                        a href="/kiosk" { "Kiosk" }
                        a href="/settings" { "Settings" }
                        a href="/fleet" { "Fleet" }
                        a href="/onboarding" { "Add devices" }
                    }
                    button.secondary #theme-toggle type="button" title="Switch between light and dark" { "◐ Theme" }
                }
                main { (body) }
                footer { "The Shepherd " (env!("CARGO_PKG_VERSION")) }
            }
        }
    }
}

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

fn why(m: &MinerView) -> Markup {
    html! { @if let Some(w) = why_words(m) { " " small.why title=(m.diagnosis.summary) { (w) } } }
}

fn miner_row(m: &MinerView, spark: Option<&Vec<f64>>) -> Markup {
    html! {
        tr data-id=(m.id) {
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
            td data-k="pool" data-label="Pool" { (m.pool.as_deref().unwrap_or("—")) }
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
                }
            }
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
pub async fn dashboard(state: web::Data<AppState>) -> actix_web::Result<Markup> {
    let state = state.into_inner();
    let pool = state.pool.clone();
    let spark_pool = state.pool.clone();
    let data = blocking(move || herd(&state)).await?;
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
            (market(&data))
            p.stale #stale hidden { "Live data unavailable — showing values as of " span #stale-since {} "." }
            @if data.miners.is_empty() {
                p.empty { "No miners yet. Add one with " code { "shepherd miners add --name NAME --port /dev/ttyUSB0" } " or start with " code { "shepherd run --demo" } "." }
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
                    } }
                    tbody { @for m in &data.miners { (miner_row(m, sparks.get(&m.id))) } }
                }
            }
            script src=(asset("format.js")) {}
            script src=(asset("app.js")) {}
            script src=(asset("alerts.js")) {}
        },
    ))
}
