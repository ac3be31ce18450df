//! Full-screen kiosk views for a screen bolted to the rack: `/kiosk/clock`, `/kiosk/health`,
//! `/kiosk/homage`, `/kiosk/stream`, and `/kiosk`, which lists them with the Chromium command
//! line. Each view is server-rendered with the current figures (useful at once, and before
//! any script runs) and then kept live by assets/kiosk.js, which polls `/api/herd_data`,
//! marks old values "data is stale since …" when the server is away, and reloads the page
//! when the server comes back with a different version.

use actix_web::{web, HttpRequest};
use maud::{html, Markup, DOCTYPE};

use super::api::herd;
use super::format;
use super::frame::{asset, layout};
use super::AppState;
use crate::herd::HerdData;
use crate::model::status::Status;

/// The kiosk views: path segment, title, what it shows.
pub const VIEWS: &[(&str, &str, &str)] = &[
    ("clock", "Clock", "a big clock, the BTC price and its 24-hour change, herd hashrate, miners online, best difficulty"),
    ("health", "Health", "every miner as a tile, problems first in red or amber with the reason"),
    ("homage", "Homage", "the herd as a NerdMiner v2 screen: miner, clock, network and price screens in turn; tap to switch"),
    ("stream", "Stream", "digital rain of the herd's live log lines; orange when a share, a new best or a block happens"),
    ("records", "Records", "the herd's best-share leaderboard and how many coin flips away a block is, readable across a room"),
];

/// The frame of every kiosk view: no navigation, no scrollbars, the stale banner, the poller.
fn frame(view: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · The Shepherd kiosk" }
                link rel="icon" href=(asset("favicon.svg"));
                link rel="stylesheet" href=(asset("kiosk.css"));
                link rel="stylesheet" href=(asset("celebrate.css"));
            }
            body class={ "kiosk kiosk-" (view) } data-version=(env!("CARGO_PKG_VERSION")) {
                (body)
                div #stale.k-stale hidden { "data is stale since " span #stale-since {} " — reconnecting…" }
                script src=(asset("format.js")) {}
                script src=(asset("kiosk.js")) {}
                script src=(asset(&format!("kiosk-{view}.js"))) {}
                script src=(asset("celebrate.js")) {}
            }
        }
    }
}

async fn data(state: web::Data<AppState>) -> Result<HerdData, super::error::ApiError> {
    herd(&state).await
}

fn status_name(s: Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The Chromium command line that shows `url` full-screen.
pub fn chromium_line(url: &str) -> String {
    format!("chromium-browser --kiosk --noerrdialogs --disable-infobars --incognito --check-for-update-interval=31536000 {url}")
}

/// The autostart `.desktop` file (X11 desktops, LXDE on older Raspberry Pi OS).
pub fn desktop_file(url: &str) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Shepherd kiosk\nComment=The Shepherd's kiosk view, full-screen\nExec={}\nX-GNOME-Autostart-enabled=true\n",
        chromium_line(url)
    )
}

/// `GET /kiosk`: the views with a live thumbnail each, and how to run one full-screen at boot.
pub async fn index(req: HttpRequest) -> Markup {
    // The address the owner reached us on is the one the kiosk machine will use too.
    let host = req.connection_info().host().to_owned();
    let url = format!("http://{host}/kiosk/clock");
    layout(
        "Kiosk",
        html! {
            h1 { "Kiosk views" }
            p { "Full-screen pages for a screen next to the miners (a 800×480 Pi touchscreen up to a 1920×1080 TV). They keep themselves up to date, say so when the data is stale, reconnect after a restart and reload after an upgrade, and need no internet." }
            ul.kiosk-thumbs {
                @for (path, title, what) in VIEWS {
                    li {
                        a href={ "/kiosk/" (path) } {
                            // A live view at 800×480, shrunk: what the screen will show now.
                            span.thumb { iframe src={ "/kiosk/" (path) } title={ (title) " preview" } loading="lazy" tabindex="-1" scrolling="no" {} }
                            strong { (title) }
                        }
                        " — " (what)
                    }
                }
            }
            h2 { "Run one full-screen at boot (Raspberry Pi OS)" }
            p { "On the machine with the screen, in its desktop session. Replace " code { "clock" } " by the view you want. Leave the kiosk with Alt+F4." }
            h3 { "Raspberry Pi OS Bookworm with labwc (the default since late 2024)" }
            p { "Add this line to " code { "~/.config/labwc/autostart" } " (create the file if needed):" }
            pre.cmd { (chromium_line(&url)) " &" }
            h3 { "Bookworm with Wayfire" }
            p { "Add to " code { "~/.config/wayfire.ini" } ":" }
            pre.cmd { "[autostart]\nshepherd = " (chromium_line(&url)) }
            h3 { "Older Raspberry Pi OS (X11, LXDE)" }
            p { "Save this as " code { "~/.config/autostart/shepherd-kiosk.desktop" } ":" }
            pre.cmd { (desktop_file(&url)) }
            h3 { "Keep the screen on" }
            p { "Turn screen blanking off, once:" }
            pre.cmd { "sudo raspi-config nonint do_blanking 1" }
            p.muted { "(or Raspberry Pi Configuration → Display → Screen Blanking: off), then reboot. The kiosk pages hide the mouse pointer themselves; on newer Chromium builds use " code { "chromium" } " where " code { "chromium-browser" } " is not found." }
        },
    )
}

/// `?best=1` on the clock kiosk: the optional best-share line.
#[derive(serde::Deserialize)]
pub struct ClockQuery {
    best: Option<String>,
}

/// "Herd best share 1.23M · 26.9 coin flips from a block", the line the clock can show.
fn best_line(d: &HerdData) -> String {
    let l = &d.lottery.figures;
    match (l.best_share, l.coin_flips) {
        (Some(b), Some(f)) => format!(
            "Herd best share {} · {f:.1} coin flips from a block",
            format::difficulty(Some(b))
        ),
        (Some(b), None) => format!("Herd best share {}", format::difficulty(Some(b))),
        _ => "No best share recorded yet".into(),
    }
}

/// `GET /kiosk/clock` (`?best=1` adds the herd's best share and coin flips)
pub async fn clock(
    state: web::Data<AppState>,
    q: web::Query<ClockQuery>,
) -> actix_web::Result<Markup> {
    let show_best = q.best.as_deref().is_some_and(|v| v != "0" && !v.is_empty());
    let d = data(state).await?;
    let p = &d.price;
    let change_class = match p.change_24h_percent {
        Some(c) if c < 0.0 => "down",
        Some(_) => "up",
        None => "",
    };
    Ok(frame(
        "clock",
        "Clock",
        html! {
            main.k-clock data-server-time=(d.server_time) {
                div #k-time.k-time { (format::utc_time(Some(d.server_time))) }
                div #k-date.k-date {}
                section.k-row {
                    div.k-stat {
                        div.k-label { "BTC" }
                        div.k-value data-f="price" { (format::price(p.price, &p.currency)) }
                        div.k-sub {
                            span data-f="change" class=(change_class) { (format::change(p.change_24h_percent)) }
                            " 24 h · " span data-f="price-asof" { @if p.fetched_at.is_some() { "as of " (format::utc_time(p.fetched_at)) } @else { "not fetched yet" } }
                        }
                    }
                    div.k-stat { div.k-label { "Herd hashrate" } div.k-value data-f="hashrate" { (format::hashrate(Some(d.totals.hashrate_khs))) } }
                    div.k-stat { div.k-label { "Miners online" } div.k-value data-f="online" { (d.totals.online) " / " (d.totals.miners) } }
                    div.k-stat { div.k-label { "Best difficulty" } div.k-value data-f="best" { (format::difficulty(d.totals.best_diff)) } }
                }
                @if show_best {
                    div.k-bestline data-f="bestline" { (best_line(&d)) }
                }
            }
        },
    ))
}

/// `GET /kiosk/health`
pub async fn health(state: web::Data<AppState>) -> actix_web::Result<Markup> {
    let mut d = data(state).await?;
    super::pages::problems_first(&mut d.miners);
    Ok(frame(
        "health",
        "Health",
        html! {
            main.k-health {
                header.k-health-head {
                    span data-f="online" { (d.totals.online) " / " (d.totals.miners) " online" }
                    span data-f="hashrate" { (format::hashrate(Some(d.totals.hashrate_khs))) }
                }
                div #k-grid.k-grid data-n=(d.miners.len().max(1)) {
                    @for m in &d.miners {
                        div class={ "k-tile status-" (status_name(m.status)) } data-id=(m.id) {
                            div.k-name { (m.name) }
                            div.k-figure { (format::hashrate(m.hashrate_khs)) }
                            div.k-state {
                                (status_name(m.status).replace('_', " "))
                                @if let Some(r) = super::pages::reason(m) { " — " (r) }
                            }
                        }
                    }
                    @if d.miners.is_empty() { div.k-tile { div.k-name { "No miners yet" } } }
                }
            }
        },
    ))
}

/// `GET /kiosk/homage`: a NerdMiner v2 screen for the herd, drawn on a 320×170 canvas (the
/// T-Display the NerdMiner ships on) and scaled by a whole number with square pixels; the text
/// fallback is what the canvas shows.
pub async fn homage(state: web::Data<AppState>) -> actix_web::Result<Markup> {
    let d = data(state).await?;
    let t = &d.totals;
    let temp = d
        .miners
        .iter()
        .filter_map(|m| m.temperature)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    let uptime = d.miners.iter().filter_map(|m| m.uptime_secs).max();
    Ok(frame(
        "homage",
        "Homage",
        html! {
            main.k-homage {
                canvas #k-screen width="320" height="170" {
                    "Herd hashrate " (format::hashrate(Some(t.hashrate_khs)))
                    ", shares " (t.shares) ", best difficulty " (format::difficulty(t.best_diff))
                    ", temperature " (format::temperature(temp)) ", uptime " (format::uptime(uptime))
                    ", valid blocks " (t.blocks_found)
                    ". " (best_line(&d))
                }
            }
            // The drawing primitives (font, 7-segment digits, panels) the view script uses.
            script src=(asset("nerd-draw.js")) {}
        },
    ))
}

/// `GET /kiosk/stream`
pub async fn stream() -> Markup {
    frame(
        "stream",
        "Stream",
        html! {
            main.k-stream {
                canvas #k-rain {}
                // A real event (share accepted, new best, block) and the miner's name, briefly.
                div #k-event.k-event role="status" hidden {}
                div.k-caption { "The Shepherd · live from the herd" }
            }
        },
    )
}

/// `GET /kiosk/records`: the herd's top 10 for an 800×480 screen across the room: the herd's
/// best share and coin flips on top, the distance bar, then the leaderboard in large type.
pub async fn records(state: web::Data<AppState>) -> actix_web::Result<Markup> {
    let d = data(state).await?;
    let l = &d.lottery;
    Ok(frame(
        "records",
        "Records",
        html! {
            main.k-records {
                header.k-rec-head {
                    div {
                        div.k-label { "Herd best share" }
                        div.k-rec-best data-f="rec-best" { (format::difficulty(l.figures.best_share)) }
                    }
                    div {
                        div.k-label { "Coin flips from a block" }
                        div.k-rec-flips data-f="rec-flips" {
                            @match l.figures.coin_flips { Some(f) => { (format!("{f:.1}")) }, None => { "—" } }
                        }
                    }
                }
                div.k-rec-bar title="log scale from difficulty 1 to the network difficulty" {
                    div #k-rec-fill.k-rec-fill data-p=(l.figures.progress_to_block.unwrap_or(0.0)) {}
                }
                ol #k-rec-list.k-rec-list {
                    @for r in &l.records {
                        li {
                            span.k-rec-diff { (format::difficulty(Some(r.difficulty))) }
                            span.k-rec-miner { (r.miner) }
                            span.k-rec-when { (format::utc_time(Some(r.at))) }
                        }
                    }
                    @if l.records.is_empty() { li.k-rec-empty { "No shares recorded yet" } }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desktop_file_is_complete() {
        let f = desktop_file("http://pi.local:8080/kiosk/clock");
        assert!(f.starts_with("[Desktop Entry]\nType=Application\n"));
        assert!(f.contains("\nExec=chromium-browser --kiosk "));
        assert!(f.contains("http://pi.local:8080/kiosk/clock\n"));
        assert!(f.contains("Name=") && f.ends_with('\n'));
    }
}
