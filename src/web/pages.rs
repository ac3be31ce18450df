//! Server-rendered pages. maud escapes every interpolated value; nothing user-supplied is
//! ever wrapped in `PreEscaped`.

use actix_web::web;
use maud::{html, Markup, DOCTYPE};

use super::api::{blocking, herd, HerdData};
use super::{format, AppState};
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
            }
            body {
                header.topbar {
                    a.brand href="/" { img src=(asset("favicon.svg") ) alt="" width="28" height="28"; " The Shepherd" }
                    nav { a href="/" { "Dashboard" } }
                }
                main { (body) }
                footer { "The Shepherd " (env!("CARGO_PKG_VERSION")) }
            }
        }
    }
}

fn status_badge(m: &MinerView) -> Markup {
    let status = serde_json::to_value(m.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    html! {
        span class={"badge status-" (status)} title=[m.status_detail.as_deref()] { (status.replace('_', " ")) }
    }
}

fn miner_row(m: &MinerView) -> Markup {
    html! {
        tr data-id=(m.id) {
            td data-k="name" { a href={"/miners/manage/" (m.id)} title="Manage: read its configuration, backups" { (m.name) } }
            td data-k="status" { (status_badge(m)) }
            td.num data-k="hashrate" { (format::hashrate(m.hashrate_khs)) }
            td.num data-k="avg24" { (format::hashrate(m.hashrate_avg_24h)) }
            td.num data-k="temp" { (format::temperature(m.temperature)) }
            td.num data-k="shares" { (m.accepted) " / " (m.rejected) }
            td.num data-k="best" { (format::difficulty(m.best_diff)) }
            td.num data-k="uptime" { (format::uptime(m.uptime_secs)) }
            td data-k="seen" data-ts=[m.last_seen] { "—" }
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

/// `GET /`: every miner with its status and figures, updated live by assets/app.js.
pub async fn dashboard(state: web::Data<AppState>) -> actix_web::Result<Markup> {
    let state = state.into_inner();
    let data = blocking(move || herd(&state)).await?;
    Ok(layout(
        "Dashboard",
        html! {
            (totals(&data))
            p.stale #stale hidden { "Live data unavailable — showing values as of " span #stale-since {} "." }
            @if data.miners.is_empty() {
                p.empty { "No miners yet. Add one with " code { "shepherd miners add --name NAME --port /dev/ttyUSB0" } " or start with " code { "shepherd run --demo" } "." }
            }
            div.table-wrap {
                table #herd data-server-time=(data.server_time) {
                    thead { tr {
                        th { "Miner" } th { "Status" } th.num { "Hashrate" } th.num { "24 h avg" }
                        th.num { "Temp" } th.num { "Shares acc / rej" } th.num { "Best diff" }
                        th.num { "Uptime" } th { "Last seen" }
                    } }
                    tbody { @for m in &data.miners { (miner_row(m)) } }
                }
            }
            script src=(asset("app.js")) {}
        },
    ))
}
