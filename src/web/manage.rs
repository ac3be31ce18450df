//! One miner's management page and the command / backup API behind it: read its
//! configuration (queued as a GET_CONFIG command that its MinerActor runs), watch progress,
//! download the raw partition images kept as backups.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::api::blocking;
use super::error::ApiError;
use super::frame::{asset, layout};
use super::{csrf, AppState};
use crate::db::commands::{self, Backup, CommandRow};
use crate::db::commands::{restore_payload, CommandKind, RestorePayload, MAX_AUTO_RESTORES};
use crate::db::miners::{self, Miner};
use crate::db::{DbError, Write};
use crate::flash::nerd_config;
use crate::miner::command::{loader_options, mask_config, NO_RESET_KEY};
use crate::miner::get_config::Method;
use crate::miner::CommandQueued;
use crate::rollout::{self, Rollout};

fn not_found(what: String) -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": what }))
}

/// `POST /api/miner/{id}/get_config` — body optional: `{"method": "boot" | "flash"}` (default:
/// flash, falling back to the boot capture). Answers 202 `{"id": <command id>}`. Like the
/// forms, it must come from this server's own page ([`csrf::check`]): the read resets the
/// miner, so another web page must not be able to start it.
pub async fn get_config(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    if let Err(e) = csrf::check(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({ "error": e.to_string() })));
    }
    let payload = body_text(&body);
    if let Err(e) = Method::from_payload(payload.as_deref())
        .and_then(|_| loader_options(payload.as_deref()).map(|_| ()))
    {
        return Ok(HttpResponse::BadRequest().json(json!({ "error": e })));
    }
    queue(&state, path.into_inner(), CommandKind::GetConfig, payload).await
}

/// An optional request body as text (`None` when empty).
fn body_text(body: &web::Bytes) -> Option<String> {
    let text = String::from_utf8_lossy(body).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// `POST /api/miner/{id}/doctor` — body optional: `{"no_reset": true}`. Queues the read-only
/// DOCTOR check (sync, chip, MAC, flash, partitions, SPIFFS, config, read speed, with a
/// protocol trace in its result); 202 `{"id"}`. Same-origin only: it resets the miner.
pub async fn doctor(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    if let Err(e) = csrf::check(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({ "error": e.to_string() })));
    }
    let payload = body_text(&body);
    if let Err(e) = loader_options(payload.as_deref()) {
        return Ok(HttpResponse::BadRequest().json(json!({ "error": e })));
    }
    queue(&state, path.into_inner(), CommandKind::Doctor, payload).await
}

/// `POST /api/miner/{id}/identify` — no body. Queues RESET with reason `identify`: the board
/// reboots visibly (about 20 s of mining lost); 202 `{"id"}`. Same-origin only: it resets the
/// miner.
pub async fn identify(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    if let Err(e) = csrf::check(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({ "error": e.to_string() })));
    }
    let payload = json!({ "reason": "identify" }).to_string();
    queue(&state, path.into_inner(), CommandKind::Reset, Some(payload)).await
}

/// Queues `command` for `miner_id` and tells the supervisor; 202 `{"id"}`, 404 without miner.
async fn queue(
    state: &AppState,
    miner_id: i64,
    command: CommandKind,
    payload: Option<String>,
) -> actix_web::Result<HttpResponse> {
    let pool = state.pool.clone();
    if blocking(move || pool.with(|c| miners::get(c, miner_id)))
        .await?
        .is_none()
    {
        return Ok(not_found(format!("no miner with id {miner_id}")));
    }
    let stored = payload.clone();
    let id = state
        .db
        .send(Write::new(move |c| {
            commands::insert(c, miner_id, command, stored.as_deref())
        }))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    state
        .supervisor
        .do_send(CommandQueued::new(id, miner_id, command, payload));
    Ok(HttpResponse::Accepted().json(json!({ "id": id })))
}

/// `POST /api/miner/{id}/set_config` — body: the whole configuration object (config.json
/// keys). Checked here first (400 with `{"error", "fields": [{key, message}]}` so the form can
/// show each problem next to its field), then queued as SET_CONFIG: 202 `{"id"}`. Same-origin
/// only, like every request that resets a miner.
pub async fn set_config(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    if let Err(e) = csrf::check(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({ "error": e.to_string() })));
    }
    let miner_id = path.into_inner();
    let map = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Ok(HttpResponse::BadRequest()
                .json(json!({ "error": "the configuration must be a JSON object", "fields": [] })))
        }
        Err(e) => {
            return Ok(HttpResponse::BadRequest()
                .json(json!({ "error": format!("not JSON: {e}"), "fields": [] })))
        }
    };
    let mut config = map.clone();
    config.remove(NO_RESET_KEY);
    let errors = nerd_config::validate(&config);
    if !errors.is_empty() {
        return Ok(HttpResponse::BadRequest().json(json!({
            "error": nerd_config::describe(&errors),
            "fields": errors,
        })));
    }
    let text = Value::Object(map).to_string();
    if let Err(e) = loader_options(Some(&text)) {
        return Ok(HttpResponse::BadRequest().json(json!({ "error": e, "fields": [] })));
    }
    queue(&state, miner_id, CommandKind::SetConfig, Some(text)).await
}

/// `POST /api/backups/{id}/restore` (body optional: `{"no_reset": true}`): queues a restoring
/// SET_CONFIG for the backup's miner (the same read, backup, write, verify and boot-confirm
/// steps as a configuration write). 202 `{"id"}`.
pub async fn restore(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    if let Err(e) = csrf::check(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({ "error": e.to_string() })));
    }
    let opts = match loader_options(body_text(&body).as_deref()) {
        Ok(o) => o,
        Err(e) => return Ok(HttpResponse::BadRequest().json(json!({ "error": e }))),
    };
    let id = path.into_inner();
    let pool = state.pool.clone();
    let Some(b) = blocking(move || pool.with(|c| commands::backup(c, id))).await? else {
        return Ok(not_found(format!("no backup with id {id}")));
    };
    let mut text = restore_payload(&RestorePayload::of(&b, false));
    if !opts.reset {
        if let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(&text) {
            m.insert(NO_RESET_KEY.into(), Value::Bool(true));
            text = Value::Object(m).to_string();
        }
    }
    queue(&state, b.miner_id, CommandKind::SetConfig, Some(text)).await
}

/// Body of `POST /api/rollout`.
#[derive(Debug, serde::Deserialize)]
pub struct RolloutRequest {
    /// The keys to write (e.g. poolString, portNumber, poolPassword, btcString).
    pub change: serde_json::Map<String, Value>,
    /// Miner ids, the canary first.
    pub miners: Vec<i64>,
}

/// `POST /api/rollout` `{"change": {...}, "miners": [canary, ...]}`: plans a canary rollout
/// and starts it; 202 `{"id"}`, 400 with the reason when the plan is refused. Same-origin only.
pub async fn start_rollout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RolloutRequest>,
) -> actix_web::Result<HttpResponse> {
    if let Err(e) = csrf::check(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({ "error": e.to_string() })));
    }
    let RolloutRequest {
        change,
        miners: ids,
    } = body.into_inner();
    let pool = state.pool.clone();
    let all = blocking(move || pool.with(miners::list)).await?;
    let mut chosen = Vec::new();
    for id in ids {
        match all.iter().find(|m| m.id == id) {
            Some(m) => chosen.push((m.id, m.name.clone())),
            None => return Ok(not_found(format!("no miner with id {id}"))),
        }
    }
    let plan = match Rollout::plan(0, change, chosen) {
        Ok(p) => p,
        Err(e) => return Ok(HttpResponse::BadRequest().json(json!({ "error": e }))),
    };
    let id = state.rollouts.add(plan);
    actix_web::rt::spawn(rollout::run(
        state.rollouts.clone(),
        id,
        state.pool.clone(),
        state.db.clone(),
        state.supervisor.clone(),
    ));
    Ok(HttpResponse::Accepted().json(json!({ "id": id })))
}

/// `GET /api/rollout/{id}`: the plan, each miner's state and a summary line.
pub async fn rollout(
    state: web::Data<AppState>,
    path: web::Path<u64>,
) -> actix_web::Result<HttpResponse> {
    let id = path.into_inner();
    match state.rollouts.get(id) {
        Some(r) => {
            let mut v = serde_json::to_value(&r).map_err(ApiError::from)?;
            v["summary"] = json!(r.summary());
            v["finished"] = json!(matches!(
                r.next(),
                rollout::Next::Done | rollout::Next::Stopped
            ));
            if let Some(change) = v.get_mut("change").and_then(Value::as_object_mut) {
                *change = mask_config(change);
            }
            Ok(super::api::fresh_json(&v))
        }
        None => Ok(not_found(format!("no rollout with id {id}"))),
    }
}

/// `GET /api/commands/{id}`: a command's status, detail and result.
pub async fn command(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    let id = path.into_inner();
    let pool = state.pool.clone();
    match blocking(move || pool.with(|c| commands::get(c, id))).await? {
        Some(mut row) => {
            // Secrets are masked for everyone; the payload (a whole configuration to write)
            // is shown only to a logged-in user when a password is set.
            row.payload = if super::auth::allowed(&state, &req) {
                row.payload
                    .map(|p| match serde_json::from_str::<Value>(&p) {
                        Ok(mut v) => {
                            super::security::mask_secrets(&mut v);
                            v.to_string()
                        }
                        Err(_) => "(not JSON; hidden)".to_owned(),
                    })
            } else {
                None
            };
            if let Some(r) = row.result.as_mut() {
                super::security::mask_secrets(r);
            }
            Ok(super::api::fresh_json(&row))
        }
        None => Ok(not_found(format!("no command with id {id}"))),
    }
}

/// `GET /api/backups/{id}`: the raw partition image.
pub async fn backup(
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    let id = path.into_inner();
    let pool = state.pool.clone();
    let Some(b) = blocking(move || pool.with(|c| commands::backup(c, id))).await? else {
        return Ok(not_found(format!("no backup with id {id}")));
    };
    let file = b.path.clone();
    let data = web::block(move || std::fs::read(file)).await?;
    match data {
        Ok(bytes) => Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"miner{}-spiffs-0x{:x}-{}.bin\"",
                    b.miner_id, b.offset, b.id
                ),
            ))
            .body(bytes)),
        Err(e) => Ok(not_found(format!(
            "backup {id} is recorded but its file {} cannot be read ({e}): it was deleted",
            b.path
        ))),
    }
}

/// Everything the manage page shows.
struct ManageData {
    miner: Miner,
    config: Option<(String, Option<i64>)>,
    commands: Vec<CommandRow>,
    backups: Vec<Backup>,
    /// The restore still owed to the miner after a write that did not finish.
    intent: Option<commands::RestoreIntent>,
    /// `/settings` pools: (name, host, port).
    pools: Vec<(String, String, i64)>,
    /// `/settings` coin addresses: (label, address).
    addresses: Vec<(String, String)>,
    /// Every miner (id, name), for the rollout form.
    herd: Vec<(i64, String)>,
}

/// `/settings` pools (name, host, port) and coin addresses (label, address).
type Choices = (Vec<(String, String, i64)>, Vec<(String, String)>);

/// The pools and addresses kept on `/settings`, for the form's pickers.
fn choices(c: &rusqlite::Connection) -> rusqlite::Result<Choices> {
    let mut stmt = c.prepare_cached("SELECT name, url, port FROM pools ORDER BY name")?;
    let pools = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = c.prepare_cached("SELECT label, address FROM coin_addresses ORDER BY label")?;
    let addresses = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok((pools, addresses))
}

fn load(state: &AppState, id: i64) -> Result<Option<ManageData>, DbError> {
    state.pool.with(|c| {
        let Some(miner) = miners::get(c, id)? else {
            return Ok(None);
        };
        let (pools, addresses) = choices(c)?;
        let herd = miners::list(c)?
            .into_iter()
            .map(|m| (m.id, m.name))
            .collect();
        Ok(Some(ManageData {
            herd,
            pools,
            addresses,
            config: commands::last_config(c, id)?,
            commands: commands::recent(c, id, 10)?,
            backups: commands::backups(c, id)?,
            intent: commands::intent(c, id)?,
            miner,
        }))
    })
}

fn masked_pretty(json: &str) -> String {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => {
            serde_json::to_string_pretty(&Value::Object(mask_config(&m))).unwrap_or_default()
        }
        _ => "(not a JSON object)".into(),
    }
}

/// The edit form, prefilled from the last read configuration (the password is never put in
/// the page: left empty, the miner keeps its current one).
fn edit_form(d: &ManageData) -> Markup {
    let last: serde_json::Map<String, Value> = d
        .config
        .as_ref()
        .and_then(|(j, _)| serde_json::from_str::<Value>(j).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let text = |k: &str| {
        last.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    let checked = |k: &str| last.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut raw = last.clone();
    raw.remove("poolPassword");
    let raw = serde_json::to_string_pretty(&Value::Object(raw)).unwrap_or_default();
    let field = |key: &str, label: &str, kind: &str, value: String, hint: &str| {
        html! {
            p.field {
                label for={"f-" (key)} { (label) } br;
                input type=(kind) id={"f-" (key)} name=(key) value=(value) data-key=(key);
                @if !hint.is_empty() { " " small.muted { (hint) } }
                br; span.error id={"err-" (key)} {}
            }
        }
    };
    html! {
        section.card #write data-miner=(d.miner.id) {
            h2 { "Change its configuration" }
            @if d.config.is_none() {
                p.muted { "Read the configuration first to start from the miner's current values." }
            }
            p.muted {
                "Writing enters the ROM bootloader, reads the SPIFFS partition as a backup, writes the new "
                "image, verifies it with the chip's MD5, resets the miner and waits until it boots with the "
                "new configuration and reaches its pool. If anything goes wrong the backup is written back."
            }
            form #config-form autocomplete="off" {
                @if !d.pools.is_empty() {
                    p.field { label for="pick-pool" { "Pool from settings" } br;
                        select #pick-pool {
                            option value="" { "—" }
                            @for (name, url, port) in &d.pools {
                                option value=(url) data-port=(port) { (name) " (" (url) ":" (port) ")" }
                            }
                        }
                    }
                }
                (field("poolString", "Pool host", "text", text("poolString"), "e.g. public-pool.io"))
                (field("portNumber", "Pool port", "number", text("portNumber"), "1–65535"))
                (field("poolPassword", "Pool password", "password", String::new(), "empty: keep the current one"))
                @if !d.addresses.is_empty() {
                    p.field { label for="pick-address" { "Address from settings" } br;
                        select #pick-address {
                            option value="" { "—" }
                            @for (label, addr) in &d.addresses {
                                option value=(addr) { (label) " (" (addr) ")" }
                            }
                        }
                    }
                }
                (field("btcString", "BTC address (optionally .worker)", "text", text("btcString"), "checked: bech32/bech32m or base58"))
                (field("gmtZone", "Time zone (hours from UTC)", "number", text("gmtZone"), "-12 to 14"))
                (field("Brightness", "Brightness", "number", text("Brightness"), "0–255 (display boards)"))
                p.field {
                    label { input type="checkbox" name="saveStatsToNVS" data-key="saveStatsToNVS" data-bool="1" checked[checked("saveStatsToNVS")]; " Save statistics to NVS" }
                    " "
                    label { input type="checkbox" name="invertColors" data-key="invertColors" data-bool="1" checked[checked("invertColors")]; " Invert colours" }
                }
                p.error id="err-" {}
                p { button.danger type="submit" { "⚠ Write to the miner" } }
            }
            details {
                summary { "Raw JSON (experts)" }
                p.muted { "The whole object is sent as is; keys left out keep the miner's current values (the password is left out here on purpose)." }
                textarea #raw-config rows="12" cols="60" { (raw) }
                p { button.danger type="button" #raw-write { "⚠ Write this JSON" } }
            }
        }
    }
}

/// The canary rollout form: this miner is the canary, the others follow one at a time.
fn rollout_form(d: &ManageData) -> Markup {
    html! {
        section.card #rollout {
            h2 { "Roll out a pool or address change" }
            p.muted {
                "Writes the fields filled in below to the miners ticked, one at a time. This miner is the "
                "canary and goes first; the others follow only if it comes back mining, and the rollout "
                "stops at the first miner that does not (that miner's backup is written back)."
            }
            form #rollout-form autocomplete="off" {
                p {
                    @for (id, name) in std::iter::once(&(d.miner.id, d.miner.name.clone())).chain(d.herd.iter().filter(|(i, _)| *i != d.miner.id)) {
                        label { input type="checkbox" name="miner" value=(id) checked[*id == d.miner.id]; " " (name) @if *id == d.miner.id { " (canary)" } } " "
                    }
                }
                div.rollout-fields {
                    label { "Pool host" input type="text" data-rkey="poolString" placeholder="e.g. public-pool.io"; }
                    label { "Pool port" input type="number" data-rkey="portNumber" placeholder="1–65535"; }
                    label { "Pool password" input type="password" data-rkey="poolPassword"; }
                    label { "BTC address (optionally .worker)" input type="text" data-rkey="btcString" size="50"; }
                }
                p.muted { "Empty fields keep each miner's own value." }
                p { button.danger type="submit" { "⚠ Start the rollout" } }
                p.error #rollout-error {}
            }
            div #rollout-progress hidden {
                p #rollout-summary {}
                ul #rollout-miners {}
            }
        }
    }
}

fn time_cell(ms: Option<i64>) -> Markup {
    html! { span.ts data-ts=[ms] { (ms.map_or_else(|| "—".to_owned(), |m| m.to_string())) } }
}

/// A copy of `v` with its secrets masked (defence in depth: results are stored masked).
fn masked(v: &Value) -> Value {
    let mut v = v.clone();
    super::security::mask_secrets(&mut v);
    v
}

fn command_result(row: &CommandRow) -> Markup {
    let Some(result) = &row.result else {
        return html! {};
    };
    let files = result["files"].as_array().cloned().unwrap_or_default();
    let verdicts = result["verdicts"].as_array().cloned().unwrap_or_default();
    html! {
        @if !verdicts.is_empty() {
            table.verdicts {
                @for v in &verdicts {
                    tr {
                        td { span class={"badge verdict-" (v["verdict"].as_str().unwrap_or(""))} { (v["verdict"].as_str().unwrap_or("?")) } }
                        td { (v["step"].as_str().unwrap_or("?")) }
                        td { (v["detail"].as_str().unwrap_or("")) }
                    }
                }
            }
            p { a href={"/api/commands/" (row.id)} download={"shepherd-doctor-" (row.miner_id) "-" (row.id) ".json"} { "Download the protocol trace" } " (attach it to a bug report; no flash contents, secrets masked)" }
        }
        @if let Some(config) = result.get("config").filter(|c| c.is_object()) {
            pre.config { (serde_json::to_string_pretty(&masked(config)).unwrap_or_default()) }
        }
        @if !files.is_empty() {
            p { "Files in SPIFFS:" }
            ul.files { @for f in &files {
                li { code { (f["path"].as_str().unwrap_or("?")) } " — " (f["size"]) " bytes" }
            } }
        }
    }
}

/// `GET /miners/manage/{id}`
pub async fn page(
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    let id = path.into_inner();
    let st = state.into_inner();
    let Some(d) = blocking(move || load(&st, id)).await? else {
        let body = layout(
            "No such miner",
            html! { p { "No miner with id " (id) ". " a href="/" { "Back to the dashboard" } } },
        );
        return Ok(HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(body.into_string()));
    };
    let active = d
        .commands
        .iter()
        .find(|c| c.status == "pending" || c.status == "running")
        .map(|c| c.id);
    let latest = d.commands.first();
    // Over HTTP there is no flash, boot log, bootloader or SPIFFS: only what its API offers.
    let axeos = d.miner.kind == "axeos";
    let body = html! {
        h1 { "Manage " (d.miner.name) }
        p.muted { "Port " code { (d.miner.port) } " · " (d.miner.kind) }
        @if axeos {
            // The address was checked as http(s)://host[:port] when it was added.
            p.notice {
                "An AxeOS miner, read over HTTP: Read asks its API for the pool, Identify makes "
                "its screen say \"Hi!\" for 30 s (AxeOS 2.12 on), pool changes go through fleet "
                "profiles and Reconcile on the Fleet page. Flash, boot log, Doctor and backups are "
                "for USB NerdMiners. "
                a href=(d.miner.port) target="_blank" rel="noopener noreferrer" { "Open its AxeOS page" }
            }
        }
        section.card #read data-miner=(d.miner.id) data-active=[active] {
            h2 { "Read its configuration" }
            @if axeos {
                p {
                    button.read type="button" data-method="" { "Read (over its API)" } " "
                    button.danger-outline type="button" #identify
                        title="Its screen says \"Hi!\" for 30 s (AxeOS 2.12 on)"
                        data-confirm="Identify asks this miner (POST /api/system/identify) to say \"Hi!\" on its screen for 30 s; it keeps mining. Go ahead?"
                        { "Identify" }
                }
                p.muted { "Read asks " code { "GET /api/system/info" } " for its pool and worker." }
            } @else {
            p {
                button.read type="button" data-method="" { "Read (flash, boot log as fallback)" } " "
                button.read type="button" data-method="flash" { "Read from flash" } " "
                button.read type="button" data-method="boot" { "Capture from boot log" } " "
                button type="button" #doctor { "Doctor (read-only check)" } " "
                button.danger-outline type="button" #identify title="Reset this board so its screen or LED visibly reboots" { "Identify" }
            }
            p {
                label {
                    input type="checkbox" #no-reset;
                    " Manual download mode: this board has no auto-reset circuit (or it is flaky). "
                    "Hold BOOT while plugging it in (or hold BOOT, press and release RESET, release BOOT), "
                    "then press a button; applies to reads, writes and restores."
                }
            }
            p.muted {
                "Flash: enters the ROM bootloader, starts the flasher stub at the fastest baud rate the "
                "link takes, reads the SPIFFS partition (seconds; minutes in manual mode, which stays on "
                "the ROM), keeps it as a backup, then resets the miner into its firmware. Boot log: resets "
                "the miner and captures the configuration it prints while booting. Doctor: a read-only "
                "check of every step with a protocol trace to attach to a bug report."
            }
            }
            div #progress hidden {
                p { "Command " span #cmd-id {} ": " span.badge #cmd-status {} }
                p #cmd-detail {}
                div #cmd-result {}
            }
            @if let Some(row) = latest {
                @if active.is_none() {
                    div #last-command {
                        p { "Last command #" (row.id) ": " span class={"badge cmd-" (row.status)} { (row.status) } " " (row.detail.as_deref().unwrap_or("")) }
                        (command_result(row))
                    }
                }
            }
        }
        @if !axeos {
            (edit_form(&d))
            (rollout_form(&d))
        }
        section.card {
            h2 { "Last known configuration" }
            @match &d.config {
                Some((json, at)) => {
                    p.muted { "Read " (time_cell(*at)) " (pool password masked)" }
                    pre.config #last-config { (masked_pretty(json)) }
                }
                None => { p { "Not read yet." } }
            }
        }
        section.card {
            h2 { "Recent commands" }
            @if d.commands.is_empty() { p { "None yet." } } @else {
                div.table-wrap { table {
                    thead { tr { th { "#" } th { "Command" } th { "Status" } th { "Detail" } th { "Queued" } } }
                    tbody { @for c in &d.commands { tr {
                        td { (c.id) } td { (c.command) }
                        td { span class={"badge cmd-" (c.status)} { (c.status) } }
                        td.detail { (c.detail.as_deref().unwrap_or("")) }
                        td { (time_cell(Some(c.created_at))) }
                    } } }
                } }
            }
        }
        @if !axeos {
        section.card #backups {
            h2 { "Backups of its SPIFFS partition" }
            @if let Some(i) = &d.intent {
                @if i.attempts >= MAX_AUTO_RESTORES {
                    p.notice { "Backup #" (i.backup_id) " still has to be written back, but "
                        (MAX_AUTO_RESTORES) " automatic restores failed: restore it by hand below once the miner is reachable." }
                } @else {
                    p.notice { "Backup #" (i.backup_id) " is to be written back: the miner has not been confirmed on a good configuration since a write did not finish. It is restored automatically when its port opens ("
                        (i.attempts) " of " (MAX_AUTO_RESTORES) " automatic attempts used)." }
                }
            }
            @if d.backups.is_empty() { p { "None yet: every read from flash and every write keeps one." } } @else {
                p.muted { "Restore writes a backup back with the same checks as a configuration write (and keeps a backup of what it replaces)." }
                div.table-wrap { table {
                    thead { tr { th { "Read" } th { "Chip" } th { "MAC" } th { "Offset" } th.num { "Size" } th { "SHA-256" } th {} } }
                    tbody { @for b in &d.backups { tr {
                        td { (time_cell(Some(b.created_at))) }
                        td { (b.chip.as_deref().unwrap_or("unknown"))
                            @if b.config_ok == Some(false) { " (no configuration in it)" } }
                        td { (b.mac.as_deref().unwrap_or("unknown")) }
                        td { code { (format!("0x{:x}", b.offset)) } }
                        td.num { (b.size) }
                        td { code title=(b.sha256) { (b.sha256.get(..16).unwrap_or(&b.sha256)) "…" } }
                        td {
                            a href={"/api/backups/" (b.id)} download { "download" } " "
                            button type="button" data-restore=(b.id) { "restore" }
                        }
                    } } }
                } }
            }
        }
        }
        script src=(asset("manage.js")) {}
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(layout(&format!("Manage {}", d.miner.name), body).into_string()))
}
