//! `/settings`: create, edit and delete miners (name, port, pool, address), pools (name, URL,
//! port, password) and coin addresses (label, checked Bitcoin address), and change the alert
//! rules (stored as overrides of config.toml's `[alerts]`, see [`crate::db::alert_settings`]). A refused form comes
//! back (422) with everything typed and the reason beside it; deleting a pool or address that
//! miners use, or any miner, first asks and says what will happen. Every POST passes the
//! same-origin check and, when a password is set, the login gate (see [`super::auth`]).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use rusqlite::OptionalExtension;
use serde::Deserialize;

use super::api::blocking;
use super::miner_page::error_page;
use super::pages::layout;
use super::{auth, csrf, AppState};
use crate::address;
use crate::config::{AlertsConfig, RuleField, ALERT_RULE_KEYS};
use crate::db::alert_settings;
use crate::db::miners as miner_rules;
use crate::db::settings::{self as db, AddressRow, Kind, MinerRow, PoolRow};
use crate::db::Write;
use crate::supervisor::Reconcile;

/// Every field any settings form sends, as text, so nothing typed is lost to a parse error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    /// Miner or pool name.
    pub name: String,
    /// Miner serial device, or pool TCP port.
    pub port: String,
    /// Pool host / URL.
    pub url: String,
    /// Pool password.
    pub password: String,
    /// Coin address label.
    pub label: String,
    /// Coin address.
    pub address: String,
    /// Miner's pool (`""` = none).
    pub pool_id: String,
    /// Miner's coin address (`""` = none).
    pub address_id: String,
    /// `yes` once a deletion was confirmed.
    pub confirm: String,
}

/// What a valid form stores.
#[derive(Debug, Clone, PartialEq)]
enum Valid {
    Miner {
        name: String,
        port: String,
        pool_id: Option<i64>,
        address_id: Option<i64>,
    },
    Pool {
        name: String,
        url: String,
        port: u16,
        /// None: keep the stored one (`x` for a new pool), since the form never shows it.
        password: Option<String>,
    },
    Address {
        label: String,
        address: String,
    },
}

/// `{kind}/{id}` from a settings URL.
fn parse_target((kind, id): (String, String)) -> Option<(Kind, i64)> {
    Some((parse_kind(&kind)?, id.parse().ok()?))
}

fn not_found() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, "Not found", "No such setting.")
}

fn parse_kind(s: &str) -> Option<Kind> {
    match s {
        "miners" => Some(Kind::Miner),
        "pools" => Some(Kind::Pool),
        "addresses" => Some(Kind::Address),
        _ => None,
    }
}

fn kind_path(k: Kind) -> &'static str {
    match k {
        Kind::Miner => "miners",
        Kind::Pool => "pools",
        Kind::Address => "addresses",
    }
}

fn check_name(what: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 64 {
        return Err(format!("{what} must be 1 to 64 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{what} cannot contain control characters"));
    }
    if crate::names::looks_empty(v) {
        return Err(format!(
            "{what} must have a visible character (zero-width and text-direction characters \
             alone show as nothing)"
        ));
    }
    Ok(v.to_owned())
}

fn choice(v: &str, what: &str) -> Result<Option<i64>, String> {
    match v.trim() {
        "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {v:?} is not one of the choices")),
    }
}

/// Checks a form for `kind`; `Err` is the sentence shown beside it.
fn validate(kind: Kind, f: &SettingsForm) -> Result<Valid, String> {
    match kind {
        Kind::Miner => {
            let name = check_name("a miner name", &f.name)?;
            let port = f.port.trim().to_owned();
            miner_rules::validate(&name, &port).map_err(|e| e.to_string())?;
            Ok(Valid::Miner {
                name,
                port,
                pool_id: choice(&f.pool_id, "pool")?,
                address_id: choice(&f.address_id, "coin address")?,
            })
        }
        Kind::Pool => {
            let name = check_name("a pool name", &f.name)?;
            let url = f.url.trim().to_owned();
            if url.is_empty()
                || url.len() > 200
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err("the pool URL must be a host name or URL without spaces, e.g. public-pool.io or stratum+tcp://pool.example".into());
            }
            let port = f
                .port
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| {
                    format!("port {:?} must be a number from 1 to 65535", f.port.trim())
                })?;
            let password = f.password.clone();
            if password.chars().count() > 64 || password.chars().any(char::is_control) {
                return Err(
                    "the pool password must be at most 64 characters, without control characters"
                        .into(),
                );
            }
            Ok(Valid::Pool {
                name,
                url,
                port,
                password: (!password.is_empty()).then_some(password),
            })
        }
        Kind::Address => {
            let label = check_name("a label", &f.label)?;
            address::check(&f.address)?;
            Ok(Valid::Address {
                label,
                address: f.address.trim().to_owned(),
            })
        }
    }
}

/// Stores a valid form. `Ok(Err(message))`: refused (name taken); `Ok(Ok(None))`: no such row.
fn store(
    conn: &rusqlite::Connection,
    id: Option<i64>,
    v: &Valid,
) -> rusqlite::Result<Result<Option<i64>, String>> {
    let (kind, name) = match v {
        Valid::Miner { name, .. } => (Kind::Miner, name),
        Valid::Pool { name, .. } => (Kind::Pool, name),
        Valid::Address { label, .. } => (Kind::Address, label),
    };
    if db::name_taken(conn, kind, name, id)? {
        return Ok(Err(format!("{name:?} is already taken: pick another name")));
    }
    let saved = match v {
        Valid::Miner {
            name,
            port,
            pool_id,
            address_id,
        } => db::save_miner(conn, id, name, port, *pool_id, *address_id),
        Valid::Pool {
            name,
            url,
            port,
            password,
        } => {
            let password = match (password, id) {
                (Some(p), _) => p.clone(),
                (None, Some(id)) => conn
                    .query_row("SELECT password FROM pools WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .unwrap_or_else(|| "x".to_owned()),
                (None, None) => "x".to_owned(),
            };
            db::save_pool(conn, id, name, url, *port, &password)
        }
        Valid::Address { label, address } => db::save_address(conn, id, label, address),
    };
    match saved {
        Ok(found) => Ok(Ok(found)),
        // A pool or address picked on the form but deleted meanwhile.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(Err(
                "that pool or coin address no longer exists: reload the page".into(),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Everything the page shows.
struct PageData {
    miners: Vec<MinerRow>,
    pools: Vec<PoolRow>,
    addresses: Vec<AddressRow>,
    /// Alert rule keys changed on this page (key, value).
    alert_overrides: Vec<(String, String)>,
    /// Read-only tokens.
    tokens: Vec<crate::db::read_tokens::TokenRow>,
}

fn load(state: &AppState) -> Result<PageData, crate::db::DbError> {
    state.pool.with(|c| {
        Ok(PageData {
            miners: db::miners(c)?,
            pools: db::pools(c)?,
            addresses: db::addresses(c)?,
            alert_overrides: alert_settings::overrides(c)?,
            tokens: crate::db::read_tokens::list(c)?,
        })
    })
}

/// A refused form: which one, what was typed, why.
struct Refused {
    kind: Kind,
    id: Option<i64>,
    form: SettingsForm,
    message: String,
}

/// A refused alert rules form: what was typed (key, value) and why.
struct AlertsRefused {
    typed: Vec<(String, String)>,
    message: String,
}

/// `?saved=<kind>` after a successful change.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    saved: Option<String>,
}

/// `GET /settings`
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> actix_web::Result<HttpResponse> {
    let st = state.clone().into_inner();
    let data = blocking(move || load(&st)).await?;
    let saved = query.saved.as_deref().and_then(parse_kind);
    let alerts_saved = query.saved.as_deref() == Some("alerts");
    Ok(html_response(
        StatusCode::OK,
        render(&req, &state, &data, None, saved, alerts_saved),
    ))
}

fn html_response(status: StatusCode, body: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `POST /settings/{kind}`: add a miner, pool or address.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Path<String>,
    form: web::Form<SettingsForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let Some(kind) = parse_kind(&kind) else {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "Settings has miners, pools and addresses.",
        ));
    };
    save(req, state, kind, None, form.into_inner()).await
}

/// `POST /settings/{kind}/{id}`: change one.
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<SettingsForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let Some((kind, id)) = parse_target(path.into_inner()) else {
        return Ok(not_found());
    };
    save(req, state, kind, Some(id), form.into_inner()).await
}

async fn save(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: Kind,
    id: Option<i64>,
    form: SettingsForm,
) -> actix_web::Result<HttpResponse> {
    let outcome = match validate(kind, &form) {
        Err(message) => Err(message),
        Ok(valid) => state
            .db
            .send(Write::new(move |conn| store(conn, id, &valid)))
            .await
            .map_err(actix_web::error::ErrorInternalServerError)?
            .map_err(|e| actix_web::error::ErrorInternalServerError(format!("database: {e}")))?,
    };
    match outcome {
        Ok(Some(_)) => {
            if kind == Kind::Miner {
                // Start, move or rename the reader now rather than at the next poll.
                state.supervisor.do_send(Reconcile);
            }
            Ok(see_other(&format!(
                "/settings?saved={0}#{0}",
                kind_path(kind)
            )))
        }
        Ok(None) => Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "It was deleted meanwhile: reload the settings page.",
        )),
        Err(message) => {
            let st = state.clone().into_inner();
            let data = blocking(move || load(&st)).await?;
            let refused = Refused {
                kind,
                id,
                form,
                message,
            };
            Ok(html_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&req, &state, &data, Some(&refused), None, false),
            ))
        }
    }
}

/// The alert rules form as (key, value) for every [`ALERT_RULE_KEYS`] key: a switch is
/// `true` when its checkbox was sent, a number is what was typed (`""` when missing).
fn alert_form_values(base: &AlertsConfig, form: &[(String, String)]) -> Vec<(String, String)> {
    let sent = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    ALERT_RULE_KEYS
        .iter()
        .map(|&key| {
            let value = match base.clone().rule_field(key) {
                Some(RuleField::Switch(_)) => sent(key).is_some().to_string(),
                _ => sent(key).unwrap_or_default().to_owned(),
            };
            (key.to_owned(), value)
        })
        .collect()
}

/// Checks a submitted alert rules form against config.toml's `[alerts]`; `Ok` holds the
/// overrides to store: only the keys whose value differs from config.toml's, normalised.
fn alert_overrides(
    base: &AlertsConfig,
    values: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let merged = base.with_overrides(values)?;
    Ok(ALERT_RULE_KEYS
        .iter()
        .filter_map(|&key| {
            let value = merged.rule_value(key)?;
            (base.rule_value(key).as_ref() != Some(&value)).then(|| (key.to_owned(), value))
        })
        .collect())
}

/// `POST /settings/alerts`: change the alert rules (in force at the next evaluation).
pub async fn save_alerts(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Vec<(String, String)>>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let base = &state.config.alerts;
    let typed = alert_form_values(base, &form);
    match alert_overrides(base, &typed) {
        Ok(overrides) => {
            state
                .db
                .send(Write::new(move |conn| {
                    alert_settings::replace(conn, &overrides)
                }))
                .await
                .map_err(actix_web::error::ErrorInternalServerError)?
                .map_err(|e| {
                    actix_web::error::ErrorInternalServerError(format!("database: {e}"))
                })?;
            Ok(see_other("/settings?saved=alerts#alert-rules"))
        }
        Err(message) => {
            let st = state.clone().into_inner();
            let data = blocking(move || load(&st)).await?;
            let refused = AlertsRefused { typed, message };
            Ok(html_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                render_with(&req, &state, &data, None, None, false, Some(&refused)),
            ))
        }
    }
}

/// `POST /settings/alerts/reset`: forget the changes; the rules follow config.toml again.
pub async fn reset_alerts(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    state
        .db
        .send(Write::new(|conn| alert_settings::clear(conn)))
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?
        .map_err(|e| actix_web::error::ErrorInternalServerError(format!("database: {e}")))?;
    Ok(see_other("/settings?saved=alerts#alert-rules"))
}

/// `POST /settings/{kind}/{id}/delete`: asks first when miners use it (or it is a miner).
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<SettingsForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let Some((kind, id)) = parse_target(path.into_inner()) else {
        return Ok(not_found());
    };
    let pool = state.pool.clone();
    let (name, users) = blocking(move || {
        pool.with(|c| {
            let name = match kind {
                Kind::Miner => db::miners(c)?
                    .into_iter()
                    .find(|m| m.id == id)
                    .map(|m| m.name),
                Kind::Pool => db::pools(c)?
                    .into_iter()
                    .find(|p| p.id == id)
                    .map(|p| p.name),
                Kind::Address => db::addresses(c)?
                    .into_iter()
                    .find(|a| a.id == id)
                    .map(|a| a.label),
            };
            Ok((name, db::users(c, kind, id)?))
        })
    })
    .await?;
    let Some(name) = name else {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "It was already deleted.",
        ));
    };
    let must_ask = kind == Kind::Miner || !users.is_empty();
    if must_ask && form.confirm != "yes" {
        return Ok(html_response(
            StatusCode::OK,
            confirm_page(kind, id, &name, &users),
        ));
    }
    state
        .db
        .send(Write::new(move |conn| db::delete(conn, kind, id)))
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?
        .map_err(|e| actix_web::error::ErrorInternalServerError(format!("database: {e}")))?;
    if kind == Kind::Miner {
        state.supervisor.do_send(Reconcile);
    }
    Ok(see_other(&format!(
        "/settings?saved={0}#{0}",
        kind_path(kind)
    )))
}

fn confirm_page(kind: Kind, id: i64, name: &str, users: &[String]) -> Markup {
    let what = match kind {
        Kind::Miner => "miner",
        Kind::Pool => "pool",
        Kind::Address => "coin address",
    };
    layout(
        "Delete?",
        html! {
            h1 { "Delete " (what) " " q { (name) } "?" }
            @if kind == Kind::Miner {
                p { "Its reader stops and its whole history (charts, log lines, events) is deleted. The board itself is not changed; plug it in again and it shows up under Add devices." }
            } @else {
                p { "It is used by " (users.len()) " miner" @if users.len() != 1 { "s" } ":" }
                ul.users { @for u in users { li { (u) } } }
                p { "Those miners are left without a " (what) " here. They keep mining with what is configured on the boards themselves." }
            }
            form.row method="post" action={ "/settings/" (kind_path(kind)) "/" (id) "/delete" } {
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { "Delete " (what) }
                a href={ "/settings#" (kind_path(kind)) } { "Cancel" }
            }
        },
    )
}

/// The form for one row (or the "add" form with `id = None`), filled from the refused form
/// when it is this one.
fn typed(refused: Option<&Refused>, kind: Kind, id: Option<i64>) -> Option<&Refused> {
    refused.filter(|r| r.kind == kind && r.id == id)
}

fn error_line(r: Option<&Refused>) -> Markup {
    html! { @if let Some(r) = r { p.error role="alert" { (r.message) } } }
}

fn delete_button(kind: Kind, id: i64) -> Markup {
    html! {
        form.inline method="post" action={ "/settings/" (kind_path(kind)) "/" (id) "/delete" } {
            button.secondary type="submit" { "Delete" }
        }
    }
}

fn select(name: &str, none: &str, choices: &[(i64, &str)], picked: &str) -> Markup {
    html! {
        select name=(name) {
            option value="" { (none) }
            @for (id, label) in choices {
                option value=(id) selected[picked == id.to_string()] { (label) }
            }
        }
    }
}

fn miner_form(d: &PageData, m: Option<&MinerRow>, r: Option<&Refused>) -> Markup {
    let id = m.map(|m| m.id);
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let (name, port, pool_id, address_id) = match (r, m) {
        (Some(r), _) => (
            r.form.name.clone(),
            r.form.port.clone(),
            r.form.pool_id.trim().to_owned(),
            r.form.address_id.trim().to_owned(),
        ),
        (None, Some(m)) => (
            m.name.clone(),
            m.port.clone(),
            opt(m.pool_id),
            opt(m.address_id),
        ),
        (None, None) => Default::default(),
    };
    let pools: Vec<(i64, &str)> = d.pools.iter().map(|p| (p.id, p.name.as_str())).collect();
    let addrs: Vec<(i64, &str)> = d
        .addresses
        .iter()
        .map(|a| (a.id, a.label.as_str()))
        .collect();
    let action = match id {
        Some(id) => format!("/settings/miners/{id}"),
        None => "/settings/miners".into(),
    };
    html! {
        form.row method="post" action=(action) {
            label { "Name" input type="text" name="name" value=(name) maxlength="64" required; }
            label { "Port" input type="text" name="port" value=(port) placeholder="/dev/ttyUSB0" required; }
            label { "Pool" (select("pool_id", "— none —", &pools, &pool_id)) }
            label { "Coin address" (select("address_id", "— none —", &addrs, &address_id)) }
            button type="submit" { @if id.is_some() { "Save" } @else { "Add miner" } }
            @if let Some(m) = m { @if m.kind == "demo" { span.muted { "demo" } } }
            (error_line(r))
        }
    }
}

fn pool_form(p: Option<&PoolRow>, r: Option<&Refused>) -> Markup {
    let id = p.map(|p| p.id);
    // The password is a secret: never sent back, not even as typed into a refused form.
    let (name, url, port) = match (r, p) {
        (Some(r), _) => (r.form.name.clone(), r.form.url.clone(), r.form.port.clone()),
        (None, Some(p)) => (p.name.clone(), p.url.clone(), p.port.to_string()),
        (None, None) => (String::new(), String::new(), "3333".into()),
    };
    let placeholder = if id.is_some() { "unchanged" } else { "x" };
    let action = match id {
        Some(id) => format!("/settings/pools/{id}"),
        None => "/settings/pools".into(),
    };
    html! {
        form.row method="post" action=(action) {
            label { "Name" input type="text" name="name" value=(name) maxlength="64" required; }
            label { "URL" input type="text" name="url" value=(url) placeholder="public-pool.io" required; }
            label { "Port" input type="number" name="port" value=(port) min="1" max="65535" required; }
            label { "Password" input type="password" name="password" value="" placeholder=(placeholder) maxlength="64" autocomplete="off"; }
            button type="submit" { @if id.is_some() { "Save" } @else { "Add pool" } }
            (error_line(r))
        }
    }
}

fn address_form(a: Option<&AddressRow>, r: Option<&Refused>) -> Markup {
    let id = a.map(|a| a.id);
    let (label, addr) = match (r, a) {
        (Some(r), _) => (r.form.label.clone(), r.form.address.clone()),
        (None, Some(a)) => (a.label.clone(), a.address.clone()),
        (None, None) => Default::default(),
    };
    let action = match id {
        Some(id) => format!("/settings/addresses/{id}"),
        None => "/settings/addresses".into(),
    };
    html! {
        form.row method="post" action=(action) {
            label { "Label" input type="text" name="label" value=(label) maxlength="64" required; }
            label.wide { "Bitcoin address" input type="text" name="address" value=(addr) size="46" spellcheck="false" required; }
            button type="submit" { @if id.is_some() { "Save" } @else { "Add address" } }
            (error_line(r))
        }
    }
}

/// The rules as the form groups them: title, switch key, threshold keys.
const RULE_GROUPS: [(&str, Option<&str>, &[&str]); 11] = [
    (
        "Offline, stalled or in error",
        Some("offline"),
        &["offline_minutes"],
    ),
    (
        "Hashrate low",
        Some("hashrate"),
        &["hashrate_below_percent", "hashrate_minutes"],
    ),
    (
        "Temperature high",
        Some("temperature"),
        &["temperature_above_c"],
    ),
    ("Pool unreachable", Some("pool"), &["pool_minutes"]),
    (
        "Shares rejected",
        Some("rejects"),
        &[
            "rejects_above_percent",
            "rejects_min_shares",
            "rejects_window_minutes",
        ],
    ),
    ("Rebooted", Some("reboot"), &[]),
    (
        "Reboot storm",
        Some("reboot_storm"),
        &["reboot_storm_count", "reboot_storm_minutes"],
    ),
    ("Brown-out reset", Some("brownout"), &[]),
    ("Pool rejects worker", Some("worker_rejected"), &[]),
    ("Block found", Some("block_found"), &[]),
    ("Every rule", None, &["repeat_minutes", "clear_secs"]),
];

fn alerts_form(
    base: &AlertsConfig,
    overrides: &[(String, String)],
    refused: Option<&AlertsRefused>,
) -> Markup {
    let effective = base.with_overrides(overrides);
    let shown = |key: &str| -> String {
        if let Some(r) = refused {
            if let Some((_, v)) = r.typed.iter().find(|(k, _)| k == key) {
                return v.clone();
            }
        }
        match &effective {
            Ok(e) => e.rule_value(key),
            Err(_) => base.rule_value(key),
        }
        .unwrap_or_default()
    };
    let changed = |key: &str| overrides.iter().any(|(k, _)| k == key);
    let from_toml = |key: &str| {
        html! {
            @if changed(key) {
                small.muted { " (config.toml: " (base.rule_value(key).unwrap_or_default()) ")" }
            }
        }
    };
    html! {
        @if !base.enabled {
            p.notice { "Alerts are off in config.toml (" code { "[alerts] enabled = false" } "): these rules are not evaluated." }
        }
        @if let Err(e) = &effective {
            p.notice role="alert" { "The stored changes are not in force (" (e) "): config.toml's values are used. Save or reset them." }
        }
        form method="post" action="/settings/alerts" {
            @for (title, switch, keys) in RULE_GROUPS {
                fieldset.row {
                    legend { (title) }
                    @if let Some(key) = switch {
                        label { input type="checkbox" name=(key) value="true" checked[shown(key) == "true"]; " " code { (key) } (from_toml(key)) }
                    }
                    @for key in keys {
                        label { code { (key) } " " input type="text" inputmode="decimal" name=(key) value=(shown(key)) size="8"; (from_toml(key)) }
                    }
                }
            }
            button type="submit" { "Save alert rules" }
            @if let Some(r) = refused { p.error role="alert" { (r.message) } }
        }
        form.inline method="post" action="/settings/alerts/reset" {
            button.secondary type="submit" disabled[overrides.is_empty()] { "Reset to config.toml" }
        }
        p.muted { "Changes are stored in the database and take effect at the next evaluation; a setting left at its config.toml value follows config.toml." }
    }
}

fn render(
    req: &HttpRequest,
    state: &AppState,
    d: &PageData,
    refused: Option<&Refused>,
    saved: Option<Kind>,
    alerts_saved: bool,
) -> Markup {
    render_with(req, state, d, refused, saved, alerts_saved, None)
}

fn render_with(
    req: &HttpRequest,
    state: &AppState,
    d: &PageData,
    refused: Option<&Refused>,
    saved: Option<Kind>,
    alerts_saved: bool,
    alerts_refused: Option<&AlertsRefused>,
) -> Markup {
    let login_needed = state.password.is_set();
    let logged_in = login_needed && auth::allowed(state, req);
    let saved_note = |k: Kind| html! { @if saved == Some(k) { p.notice.ok { "Saved." } } };
    layout(
        "Settings",
        html! {
            div.settings {
                h1 { "Settings" }
                @if login_needed {
                    @if logged_in {
                        form.inline method="post" action="/logout" { span.muted { "Logged in. " } button.secondary type="submit" { "Log out" } }
                    } @else {
                        p.notice { "Changes need a login: " a href="/login" { "log in" } "." }
                    }
                }
                @if refused.is_some() || alerts_refused.is_some() { p.notice role="alert" { "Not saved — see the message below the form." } }
                section #miners {
                    h2 { "Miners" }
                    (saved_note(Kind::Miner))
                    @for m in &d.miners {
                        div.item { (miner_form(d, Some(m), typed(refused, Kind::Miner, Some(m.id)))) (delete_button(Kind::Miner, m.id)) }
                    }
                    h3 { "Add a miner" }
                    (miner_form(d, None, typed(refused, Kind::Miner, None)))
                    p.muted { "New boards plugged into this machine are easier to add from " a href="/onboarding" { "Add devices" } "." }
                }
                section #pools {
                    h2 { "Pools" }
                    (saved_note(Kind::Pool))
                    @for p in &d.pools {
                        div.item { (pool_form(Some(p), typed(refused, Kind::Pool, Some(p.id)))) (delete_button(Kind::Pool, p.id)) }
                    }
                    h3 { "Add a pool" }
                    (pool_form(None, typed(refused, Kind::Pool, None)))
                }
                section #addresses {
                    h2 { "Coin addresses" }
                    (saved_note(Kind::Address))
                    @for a in &d.addresses {
                        div.item { (address_form(Some(a), typed(refused, Kind::Address, Some(a.id)))) (delete_button(Kind::Address, a.id)) }
                    }
                    h3 { "Add an address" }
                    (address_form(None, typed(refused, Kind::Address, None)))
                    p.muted { "Checked as a Bitcoin address: bech32/bech32m (bc1…) or base58check (1…, 3…), checksum included. " code { "address.worker" } " is accepted." }
                }
                section #alert-rules {
                    h2 { "Alert rules" }
                    @if alerts_saved { p.notice.ok { "Saved." } }
                    (alerts_form(&state.config.alerts, &d.alert_overrides, alerts_refused))
                }
                (super::tokens::section(state, &d.tokens))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SettingsForm {
        SettingsForm::default()
    }

    #[test]
    fn pools_are_validated() {
        let ok = SettingsForm {
            name: " public ".into(),
            url: "public-pool.io".into(),
            port: "3333".into(),
            ..form()
        };
        assert_eq!(
            validate(Kind::Pool, &ok),
            Ok(Valid::Pool {
                name: "public".into(),
                url: "public-pool.io".into(),
                port: 3333,
                password: None
            })
        );
        for port in ["0", "65536", "abc", ""] {
            let bad = SettingsForm {
                port: port.into(),
                ..ok.clone()
            };
            assert!(
                validate(Kind::Pool, &bad)
                    .unwrap_err()
                    .contains("1 to 65535"),
                "{port}"
            );
        }
        let spaced = SettingsForm {
            url: "a b".into(),
            ..ok.clone()
        };
        assert!(validate(Kind::Pool, &spaced).is_err());
        assert!(validate(
            Kind::Pool,
            &SettingsForm {
                name: "".into(),
                ..ok
            }
        )
        .is_err());
    }

    #[test]
    fn addresses_and_miners_are_validated() {
        let a = SettingsForm {
            label: "cold".into(),
            address: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".into(),
            ..form()
        };
        assert!(validate(Kind::Address, &a).is_ok());
        let typo = SettingsForm {
            address: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5".into(),
            ..a
        };
        assert!(validate(Kind::Address, &typo)
            .unwrap_err()
            .contains("checksum"));
        let m = SettingsForm {
            name: "desk".into(),
            port: "/dev/ttyUSB0".into(),
            pool_id: "2".into(),
            ..form()
        };
        assert!(matches!(
            validate(Kind::Miner, &m),
            Ok(Valid::Miner {
                pool_id: Some(2),
                address_id: None,
                ..
            })
        ));
        let bad = SettingsForm {
            port: "COM3".into(),
            ..m
        };
        assert!(validate(Kind::Miner, &bad)
            .unwrap_err()
            .contains("/dev/ttyUSB0"));
        assert_eq!(parse_kind("pools"), Some(Kind::Pool));
        assert_eq!(parse_kind("wallets"), None);
    }

    #[test]
    fn alert_form_stores_only_what_differs_from_config_toml() {
        let base = AlertsConfig::default();
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        // A form as the page sends it: checked boxes only, every number.
        let mut form: Vec<(String, String)> = ALERT_RULE_KEYS
            .iter()
            .filter_map(|&k| {
                let v = base.rule_value(k)?;
                match v.as_str() {
                    "true" => Some(kv(k, "true")),
                    "false" => None,
                    _ => Some((k.to_string(), v)),
                }
            })
            .filter(|(k, _)| k != "reboot")
            .collect();
        for (k, v) in form.iter_mut() {
            if k == "temperature_above_c" {
                *v = " 60 ".into();
            }
        }
        let values = alert_form_values(&base, &form);
        assert_eq!(values.len(), ALERT_RULE_KEYS.len());
        assert_eq!(
            alert_overrides(&base, &values),
            Ok(vec![kv("temperature_above_c", "60"), kv("reboot", "false")])
        );
        // The same form unchanged stores nothing.
        let unchanged = alert_form_values(&base, &{
            let mut f = form.clone();
            f.push(kv("reboot", "true"));
            f.retain(|(k, _)| k != "temperature_above_c");
            f.push(kv("temperature_above_c", "70"));
            f
        });
        assert_eq!(alert_overrides(&base, &unchanged), Ok(vec![]));
        // A bad number is refused with config's message; a missing one too.
        let bad: Vec<_> = values
            .iter()
            .map(|(k, v)| match k.as_str() {
                "offline_minutes" => kv(k, "soon"),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        assert!(alert_overrides(&base, &bad)
            .unwrap_err()
            .contains("alerts.offline_minutes"));
        let missing = alert_form_values(&base, &[]);
        assert!(alert_overrides(&base, &missing).is_err());
    }
}
