//! `/ports` and `GET /api/ports`: the physical port map, read from sysfs on every request
//! (so a plug or unplug shows at the next load; the page reloads itself every few seconds).

use std::path::Path;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::api::{blocking, fresh_json};
use super::pages::{asset, layout};
use super::AppState;
use crate::db::miners;
use crate::discovery::portmap::{self, BusNode, PortNode};
use crate::discovery::sysfs;
use crate::model::device::DeviceInfo;

/// Reads the devices and the herd, and draws the tree.
fn load(state: &AppState) -> Result<Vec<BusNode>, crate::db::DbError> {
    let herd = state.pool.with(miners::list)?;
    let devices = sysfs::scan_system();
    let scan = portmap::scan(Path::new("/sys/class/tty"), &devices);
    let miner_of = |d: &DeviceInfo| {
        herd.iter()
            .find(|m| m.port == d.tty || Some(&m.port) == d.by_id.as_ref())
            .map(|m| m.name.clone())
    };
    Ok(portmap::build(&scan, &miner_of))
}

/// `GET /api/ports`: buses, hubs and ports as a tree.
pub async fn api(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let st = state.into_inner();
    let tree = blocking(move || load(&st)).await?;
    Ok(fresh_json(&serde_json::json!({ "buses": tree })))
}

/// `GET /ports`
pub async fn page(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let st = state.into_inner();
    let tree = blocking(move || load(&st)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(render(&tree).into_string()))
}

fn port(p: &PortNode) -> Markup {
    html! {
        li class=@if p.ambiguous { "port ambiguous" } @else { "port" } {
            span.port-no { "port " (p.port) } " "
            code { (p.path) }
            @if let Some(hub) = &p.hub {
                " — hub"
                @if let Some(name) = &hub.product { " " em { (name) } }
                @if let Some(n) = hub.port_count { " (" (n) " ports)" }
                ul { @for c in &hub.ports { (port(c)) } }
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

/// The tree as nested lists.
pub fn render(tree: &[BusNode]) -> Markup {
    layout(
        "USB ports",
        html! {
            h1 { "USB ports" }
            p.muted {
                "Where each serial device is plugged in (bus-port.hub-port…), so you can label your hubs. "
                "Read from /sys on every load; this page reloads itself every 5 s."
            }
            @if tree.is_empty() {
                p { "No USB serial devices are plugged in (or /sys is not readable here)." }
            }
            @for bus in tree {
                section.card {
                    h2 { "USB bus " (bus.bus) }
                    ul.port-tree { @for p in &bus.ports { (port(p)) } }
                }
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
        let html = render(&tree).into_string();
        assert!(html.contains("USB bus 1"));
        assert!(html.contains("USB2.0 Hub"));
        assert!(html.contains("(4 ports)"));
        assert!(html.contains("&lt;b&gt;demo-1&lt;/b&gt;"));
        assert!(html.contains("demo-7"));
        assert_eq!(html.matches("identified by USB path").count(), 1);
        assert!(!html.contains("<script>"), "no inline script");
    }
}
