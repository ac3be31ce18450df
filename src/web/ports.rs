//! `/ports` and `GET /api/ports`: the physical port map, read from sysfs on every request,
//! with the hubs that switch port power (from uhubctl, when self-healing asked it). The page
//! listens on `GET /api/ports/events` and redraws the map when a device is plugged in or
//! unplugged.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures_util::stream;
use maud::{html, Markup};

use super::api::{blocking, fresh_json};
use super::frame::{asset, layout};
use super::AppState;
use crate::db::miners;
use crate::discovery::portmap::{self, BusNode, NewsSeat, PortNode};
use crate::model::device::DeviceInfo;
use crate::selfheal::{uhubctl, Report};

/// Reads the devices and the herd, and draws the tree.
fn load(state: &AppState) -> Result<Vec<BusNode>, crate::db::DbError> {
    let herd = state.pool.with(miners::list)?;
    let root = portmap::root();
    let scan = portmap::scan_root(&root);
    let miner_of = |d: &DeviceInfo| {
        herd.iter()
            .find(|m| portmap::same_port(&m.port, d))
            .map(|m| m.name.clone())
    };
    let mut tree = portmap::build(&scan, &miner_of);
    // A fake tree's ttys read as the real ones they stand for.
    let dev = root.join("dev").display().to_string();
    if dev != "/dev" {
        fn strip(p: &mut PortNode, dev: &str) {
            if let Some(t) = p.tty.as_mut().filter(|t| t.starts_with(dev)) {
                *t = format!("/dev{}", &t[dev.len()..]);
            }
            for c in p.hub.iter_mut().flat_map(|h| h.ports.iter_mut()) {
                strip(c, dev);
            }
        }
        tree.iter_mut()
            .flat_map(|b| b.ports.iter_mut())
            .for_each(|p| strip(p, &dev));
    }
    Ok(tree)
}

/// `GET /api/ports`: buses, hubs and ports as a tree, and self-healing's report (hubs that
/// switch port power, miners it waits on).
pub async fn api(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let report = state.self_heal.report();
    let st = state.into_inner();
    let tree = blocking(move || load(&st)).await?;
    Ok(fresh_json(
        &serde_json::json!({ "buses": tree, "self_heal": report }),
    ))
}

/// `GET /ports`
pub async fn page(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let report = state.self_heal.report();
    let st = state.into_inner();
    let tree = blocking(move || load(&st)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(render(&tree, &report).into_string()))
}

/// A comment line at least this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /api/ports/events`: an `event: ports` frame (data: a change counter) each time a
/// device is plugged in or unplugged; 503 when `[web] max_event_streams` are open (the page
/// then reloads itself now and then instead).
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let Some(seat) = state.port_news.join(state.config.web.max_event_streams) else {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "30"))
            .content_type("text/plain; charset=utf-8")
            .body("503: too many live-update streams are open ([web] max_event_streams).");
    };
    let body = stream::unfold(
        (seat, true),
        |(mut seat, first): (NewsSeat, bool)| async move {
            if first {
                let hello = web::Bytes::from_static(b"retry: 3000\n\n");
                return Some((Ok::<_, actix_web::Error>(hello), (seat, false)));
            }
            match tokio::time::timeout(KEEPALIVE, seat.rx.changed()).await {
                Err(_) => Some((
                    Ok(web::Bytes::from_static(b": keepalive\n\n")),
                    (seat, false),
                )),
                Ok(Err(_)) => None,
                Ok(Ok(())) => {
                    let n = *seat.rx.borrow_and_update();
                    let frame = super::events::frame("ports", &n.to_string());
                    Some((Ok(web::Bytes::from(frame)), (seat, false)))
                }
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("Content-Encoding", "identity"))
        .streaming(body)
}

/// How a hub switches its ports' power, as uhubctl told self-healing.
fn power_badge(hub: &str, report: &Report) -> Markup {
    let listed = report
        .hubs
        .as_deref()
        .and_then(|hubs| hubs.iter().find(|h| h.location == hub));
    html! {
        @match listed.map(|h| h.switching) {
            Some(uhubctl::Switching::PerPort) => {
                " " span.badge.status-online title="uhubctl lists this hub as switching each port's power (ppps): self-healing may power cycle a stuck miner on it." { "per-port power" }
            }
            Some(uhubctl::Switching::Ganged) => {
                " " span.badge title="This hub switches all its ports at once: self-healing never power cycles it (it would restart every miner on it)." { "ganged power" }
            }
            Some(uhubctl::Switching::None) => {
                " " span.badge title="This hub cannot switch port power: self-healing only resets miners on it through their serial lines." { "no power switching" }
            }
            None => {}
        }
    }
}

/// Self-healing's state in a sentence or two.
fn self_heal_card(report: &Report) -> Markup {
    html! {
        section.card #self-heal {
            h2 { "Self-healing" }
            @if !report.enabled {
                p.muted { "Off ([self_heal] enabled = false): stuck miners only raise alerts." }
            } @else {
                p {
                    "On: a stuck miner gets a reset through its serial lines; "
                    @match (&report.uhubctl, &report.hubs, &report.hubs_error) {
                        (None, _, _) => { "no power cycles (uhubctl is not installed, or power_cycle = false)." }
                        (Some(_), _, Some(e)) => { "no power cycles: " (e) }
                        (Some(p), Some(h), None) => {
                            @let n = h.iter().filter(|h| h.switching == uhubctl::Switching::PerPort).count();
                            "if that does not help, a power cycle with " code { (p) }
                            " on the " (n) " hub(s) it lists as switching each port's power."
                        }
                        (Some(_), None, None) => { "asking uhubctl which hubs switch port power…" }
                    }
                    " Checks: " (report.rounds) "."
                }
                @if !report.waiting.is_empty() {
                    ul { @for (m, why) in &report.waiting { li { strong { (m) } " — " (why) } } }
                }
            }
        }
    }
}

fn port(p: &PortNode, report: &Report) -> Markup {
    html! {
        li class=@if p.ambiguous { "port ambiguous" } @else { "port" } {
            span.port-no { "port " (p.port) } " "
            code { (p.path) }
            @if let Some(hub) = &p.hub {
                " — hub"
                @if let Some(name) = &hub.product { " " em { (name) } }
                @if let Some(n) = hub.port_count { " (" (n) " ports)" }
                (power_badge(&hub.path, report))
                ul { @for c in &hub.ports { (port(c, report)) } }
            } @else if let Some(tty) = &p.tty {
                " — "
                @match &p.miner {
                    Some(m) => strong { (m) },
                    None => span.muted { "not in the herd" },
                }
                " · " code { (tty) }
                @if let Some(id) = &p.usb_id { " · " (id) }
                " · " (p.identity)
                @if p.ambiguous {
                    " " span.badge.status-stalled title="Another board of this kind has no serial number either: only the tty name tells them apart, so this one is known by its USB path. Keep it on this port." { "identified by USB path" }
                }
            }
        }
    }
}

/// The tree as nested lists, and self-healing's report.
pub fn render(tree: &[BusNode], report: &Report) -> Markup {
    layout(
        "USB ports",
        html! {
            h1 { "USB ports" }
            p.muted {
                "Where each serial device is plugged in (bus-port.hub-port…), so you can label your hubs. "
                "Read from /sys; redrawn as devices are plugged in or unplugged. "
                "Miners on the network (Bitaxe and other AxeOS boards) have no USB port and are not drawn here."
            }
            div #port-map {
                @if tree.is_empty() {
                    p { "No USB serial devices are plugged in (or /sys is not readable here)." }
                }
                @for bus in tree {
                    section.card {
                        h2 { "USB bus " (bus.bus) " " (power_badge(&bus.bus.to_string(), report)) }
                        ul.port-tree { @for p in &bus.ports { (port(p, report)) } }
                    }
                }
                (self_heal_card(report))
            }
            script src=(asset("ports.js")) {}
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_renders_hubs_miners_and_escapes_names() {
        let leaf = |path: &str, port: u32, miner: &str, ambiguous: bool| PortNode {
            path: path.into(),
            port,
            tty: Some(format!("/dev/ttyUSB{port}")),
            usb_id: Some("1a86:7523".into()),
            miner: Some(miner.into()),
            identity: format!("usb path {path}"),
            ambiguous,
            hub: None,
        };
        let tree = vec![BusNode {
            bus: 1,
            ports: vec![PortNode {
                path: "1-1".into(),
                port: 1,
                tty: None,
                usb_id: None,
                miner: None,
                identity: "usb path 1-1".into(),
                ambiguous: false,
                hub: Some(portmap::HubNode {
                    path: "1-1".into(),
                    product: Some("USB2.0 Hub".into()),
                    port_count: Some(4),
                    ports: vec![
                        leaf("1-1.1", 1, "<b>demo-1</b>", true),
                        leaf("1-1.2", 2, "demo-7", false),
                    ],
                }),
            }],
        }];
        let report = Report {
            enabled: true,
            uhubctl: Some("/usr/sbin/uhubctl".into()),
            hubs: Some(uhubctl::parse(
                "Current status for hub 1-1 [05e3:0608 USB2.0 Hub, USB 2.00, 4 ports, ppps]\n  Port 1: 0103 power enable connect [1a86:7523 USB Serial]\n",
            )),
            hubs_error: None,
            hubs_listed_at: Some(1_764_500_000_000),
            rounds: 3,
            waiting: vec![("<i>demo-7</i>".into(), "rate limit".into())],
        };
        let html = render(&tree, &report).into_string();
        assert!(html.contains("per-port power"));
        assert!(html.contains("on the 1 hub(s)"));
        assert!(
            html.contains("&lt;i&gt;demo-7&lt;/i&gt; — rate limit")
                || html.contains("&lt;i&gt;demo-7&lt;/i&gt;</strong> — rate limit")
        );
        assert!(html.contains("USB bus 1"));
        assert!(html.contains("USB2.0 Hub"));
        assert!(html.contains("(4 ports)"));
        assert!(html.contains("&lt;b&gt;demo-1&lt;/b&gt;"));
        assert!(html.contains("demo-7"));
        assert_eq!(html.matches("identified by USB path").count(), 1);
        assert!(!html.contains("<script>"), "no inline script");
    }
}
