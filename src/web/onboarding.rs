//! `/onboarding`: boards that discovery saw and nobody has added yet. Name one and it becomes
//! a miner (read from its by-id link when that names it alone); mark the others "not a
//! miner". Forms are checked with [`super::csrf`]; a refused form comes back with what was
//! typed and the reason.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::api::blocking;
use super::error::ApiError;
use super::frame::layout;
use super::{csrf, AppState};
use crate::clock::now_ms;
use crate::db::devices::{self, Onboard, SeenDevice};
use crate::db::miners::{self, MinerError};
use crate::db::Write;
use crate::discovery::ReleasePort;
use crate::supervisor::MinersChanged;

/// Everything the page shows.
struct PageData {
    waiting: Vec<SeenDevice>,
    ignored: Vec<SeenDevice>,
    pools: Vec<(i64, String)>,
    addresses: Vec<(i64, String)>,
    added: Option<String>,
}

/// The add form as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AddForm {
    /// The `unconfigured_devices` row.
    pub device_id: i64,
    /// Name typed.
    #[serde(default)]
    pub name: String,
    /// Pool chosen (`""` for none).
    #[serde(default)]
    pub pool_id: String,
    /// Coin address chosen (`""` for none).
    #[serde(default)]
    pub address_id: String,
}

impl AddForm {
    fn parse(&self) -> Result<Onboard, String> {
        let id = |v: &str, what: &str| -> Result<Option<i64>, String> {
            match v.trim() {
                "" => Ok(None),
                v => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{what} {v:?} is not one of the choices")),
            }
        };
        Ok(Onboard {
            device_id: self.device_id,
            name: self.name.clone(),
            pool_id: id(&self.pool_id, "pool")?,
            address_id: id(&self.address_id, "coin address")?,
        })
    }
}

/// A refused form: shown again on its device with the reason.
struct Refused<'a> {
    form: &'a AddForm,
    message: String,
}

/// `?added=<miner id>` after a successful add.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    added: Option<i64>,
}

fn load(state: &AppState, added: Option<i64>) -> Result<PageData, crate::db::DbError> {
    state.pool.with(|c| {
        Ok(PageData {
            waiting: devices::unconfigured(c)?,
            ignored: devices::ignored(c)?,
            pools: devices::pool_choices(c)?,
            addresses: devices::address_choices(c)?,
            added: match added {
                Some(id) => miners::get(c, id)?.map(|m| m.name),
                None => None,
            },
        })
    })
}

/// `GET /onboarding`
pub async fn page(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> actix_web::Result<Markup> {
    let added = query.added;
    let st = state.clone().into_inner();
    let data = blocking(move || load(&st, added)).await?;
    Ok(render(&state, &data, None))
}

/// `POST /onboarding`: add a device as a miner.
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<AddForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let form = form.into_inner();
    let outcome = match form.parse() {
        Ok(onboard) => insert(&state, onboard).await?,
        Err(message) => Err(message),
    };
    match outcome {
        Ok(miner_id) => {
            // The new miner's reader starts now rather than at the next poll.
            state.supervisor.do_send(MinersChanged);
            Ok(see_other(&format!("/onboarding?added={miner_id}")))
        }
        Err(message) => {
            let st = state.clone().into_inner();
            let data = blocking(move || load(&st, None)).await?;
            let refused = Refused {
                form: &form,
                message,
            };
            let body = render(&state, &data, Some(&refused));
            Ok(HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
                .content_type("text/html; charset=utf-8")
                .body(body.into_string()))
        }
    }
}

/// Frees the device's port from a probe, then inserts the miner. `Ok(Err(message))` is a
/// refusal to show the user.
async fn insert(state: &AppState, onboard: Onboard) -> actix_web::Result<Result<i64, String>> {
    let pool = state.pool.clone();
    let id = onboard.device_id;
    let tty = blocking(move || pool.with(|c| devices::get(c, id))).await?;
    if let (Some(dev), Some(discovery)) = (tty, &state.discovery) {
        // The probe holds the port exclusively: the reader could not open it meanwhile.
        let _ = discovery.send(ReleasePort { tty: dev.tty }).await;
    }
    let written = state
        .db
        .send(Write::new(move |conn| {
            let added = devices::onboard(conn, &onboard);
            if let Ok(id) = &added {
                // Each miner its own worker on the pool, written with its address.
                crate::db::fleet::propose_worker(conn, *id)?;
            }
            Ok(added)
        }))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    match written {
        Ok(id) => Ok(Ok(id)),
        Err(MinerError::Sqlite(e)) => Err(ApiError::from(e).into()),
        Err(refusal) => Ok(Err(refusal.to_string())),
    }
}

/// `POST /onboarding/{id}/ignore`: this device is not a miner; stop offering it.
pub async fn ignore(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    set_ignored(req, state, id.into_inner(), true).await
}

/// `POST /onboarding/{id}/unignore`: offer an ignored device again.
pub async fn unignore(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    set_ignored(req, state, id.into_inner(), false).await
}

async fn set_ignored(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: i64,
    ignored: bool,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    state
        .db
        .send(Write::new(move |conn| {
            devices::set_ignored(conn, id, ignored)
        }))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    Ok(see_other("/onboarding"))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn render(state: &AppState, data: &PageData, refused: Option<&Refused<'_>>) -> Markup {
    layout(
        "Add devices",
        html! {
            h1 { "Add devices" }
            @if let Some(name) = &data.added {
                p.notice.ok { "Added " strong { (name) } ". Its reader starts now: see it on the " a href="/" { "dashboard" } "." }
            }
            @if !state.config.discovery.enabled {
                p.notice { "Device discovery is off (" code { "[discovery] enabled = false" } "): devices plugged in are not noticed." }
            }
            @if data.waiting.is_empty() {
                p.empty { "No new devices. Plug a NerdMiner into a USB port of this machine and reload: it shows up here within seconds. Miners already in the herd reconnect on their own." }
            }
            @for dev in &data.waiting {
                (device_card(dev, data, refused.filter(|r| r.form.device_id == dev.id)))
            }
            @if !data.ignored.is_empty() {
                h2 { "Ignored (not miners)" }
                div.table-wrap { table {
                    thead { tr { th { "Device" } th { "Serial number" } th { "Last seen on" } th {} } }
                    tbody { @for dev in &data.ignored {
                        tr {
                            td { (title(dev)) }
                            td { (dev.usb_serial.as_deref().unwrap_or("—")) }
                            td { code { (dev.tty) } @if !dev.present { " (unplugged)" } }
                            td { form method="post" action={ "/onboarding/" (dev.id) "/unignore" } {
                                button.secondary type="submit" { "Stop ignoring" }
                            } }
                        }
                    } }
                } }
            }
        },
    )
}

fn title(dev: &SeenDevice) -> String {
    match (&dev.product, &dev.chip) {
        (Some(p), Some(c)) if !p.contains(c.as_str()) => format!("{p} ({c})"),
        (Some(p), _) => p.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => "USB serial device".into(),
    }
}

fn ago(ts: i64) -> String {
    let secs = (now_ms() - ts).max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn device_card(dev: &SeenDevice, data: &PageData, refused: Option<&Refused<'_>>) -> Markup {
    let form = refused.map(|r| r.form);
    let typed_name = form.map(|f| f.name.as_str()).unwrap_or_default();
    let chosen = |typed: Option<&str>, id: i64| typed.is_some_and(|t| t.trim() == id.to_string());
    let usb_id = match (&dev.vid, &dev.pid) {
        (Some(v), Some(p)) => format!("{v}:{p}"),
        _ => "—".into(),
    };
    html! {
        section.device id={ "device-" (dev.id) } {
            h2 {
                (title(dev)) " on " code { (dev.tty) } " "
                @if dev.present { span.badge.status-online { "plugged in" } } @else { span.badge { "unplugged" } }
            }
            dl {
                dt { "Manufacturer" } dd { (dev.manufacturer.as_deref().unwrap_or("—")) }
                dt { "USB id" } dd { code { (usb_id) } }
                dt { "Serial number" } dd { (dev.usb_serial.as_deref().unwrap_or("none (the board is told apart by its tty name)")) }
                @if let Some(link) = &dev.by_id_path { dt { "Stable path" } dd { code { (link) } } }
                dt { "First seen" } dd { (ago(dev.first_seen)) ", last " (ago(dev.last_seen)) }
                dt { "What it prints" } dd {
                    @match &dev.probe_detail {
                        Some(d) => (d),
                        None => "not looked at yet",
                    }
                }
            }
            form.add method="post" action="/onboarding" {
                input type="hidden" name="device_id" value=(dev.id);
                label { "Name " input type="text" name="name" value=(typed_name) placeholder="e.g. desk-1" maxlength="64" required; }
                @if !data.pools.is_empty() {
                    label { "Pool " select name="pool_id" {
                        option value="" { "— keep the miner's own —" }
                        @for (id, name) in &data.pools {
                            option value=(id) selected[chosen(form.map(|f| f.pool_id.as_str()), *id)] { (name) }
                        }
                    } }
                }
                @if !data.addresses.is_empty() {
                    label { "Coin address " select name="address_id" {
                        option value="" { "— keep the miner's own —" }
                        @for (id, label) in &data.addresses {
                            option value=(id) selected[chosen(form.map(|f| f.address_id.as_str()), *id)] { (label) }
                        }
                    } }
                }
                button type="submit" { "Add miner" }
                @if let Some(r) = refused { p.error role="alert" { (r.message) } }
            }
            form.ignore method="post" action={ "/onboarding/" (dev.id) "/ignore" } {
                button.secondary type="submit" { "Not a miner — ignore it" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_choices_parse() {
        let form = |pool: &str, address: &str| AddForm {
            device_id: 3,
            name: "desk".into(),
            pool_id: pool.into(),
            address_id: address.into(),
        };
        let ok = form("", " 2 ").parse().unwrap();
        assert_eq!(
            (ok.device_id, ok.pool_id, ok.address_id),
            (3, None, Some(2))
        );
        let err = form("abc", "").parse().unwrap_err();
        assert!(err.contains("pool \"abc\""), "{err}");
    }

    #[test]
    fn device_titles() {
        let dev = SeenDevice {
            id: 1,
            tty: "/dev/ttyUSB0".into(),
            by_id_path: None,
            vid: None,
            pid: None,
            usb_serial: None,
            manufacturer: None,
            product: Some("USB Serial".into()),
            chip: Some("CH340".into()),
            present: true,
            ignored: false,
            first_seen: 0,
            last_seen: 0,
            firmware: None,
            pool: None,
            probe_detail: None,
        };
        assert_eq!(title(&dev), "USB Serial (CH340)");
        let named = SeenDevice {
            product: Some("FT232R USB UART".into()),
            chip: Some("FT232R".into()),
            ..dev.clone()
        };
        assert_eq!(title(&named), "FT232R USB UART");
        assert_eq!(
            title(&SeenDevice {
                product: None,
                chip: None,
                ..dev
            }),
            "USB serial device"
        );
    }
}
