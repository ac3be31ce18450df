//! The fleet sections of `/settings`: pool profiles (primary, fallbacks, failover, schedule
//! windows) and each miner's desired configuration (profile, payout address, worker name,
//! board keys). Like every section, one form and one Save: every row is checked, all are
//! stored in one transaction or none, and a refused section comes back as typed with each
//! error beside its field. Writing the desired state to the miners stays on `/fleet`
//! (reconcile through the canary rollout, pools tested from the Pi first).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::*;
use crate::db::fleet::{self as dbfleet, DesiredRow};
use crate::fleet::drift::{Desired, BOARD_KEYS};
use crate::fleet::profile::{Endpoint, Profile, Window, DEFAULT_MINUTES};
use crate::fleet::worker;

/// Row id of the "new profile" row of the profiles form.
const NEW: i64 = 0;

/// A stored pool password as the form shows it.
const HIDDEN: &str = "***";

/// The pools text with every password but the usual `x` hidden, to show a refused form
/// again without sending a secret back.
pub(super) fn mask_pools(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim();
            let rest = t.strip_prefix("stratum+tcp://").unwrap_or(t);
            let parts: Vec<&str> = rest.splitn(3, ':').collect();
            match parts.as_slice() {
                [host, port, pw] if *pw != "x" && !pw.is_empty() => {
                    format!("{host}:{port}:{HIDDEN}")
                }
                _ => t.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Puts back the stored password of each pool shown as `***`; the error names a pool whose
/// password is not known (a new pool: type it).
pub(super) fn restore_passwords(p: &mut Profile, stored: &[Profile]) -> Result<(), String> {
    let old = stored.iter().find(|o| o.id == p.id);
    for e in &mut p.pools {
        if e.password != HIDDEN {
            continue;
        }
        let known = old.and_then(|o| {
            o.pools
                .iter()
                .find(|q| q.host.eq_ignore_ascii_case(&e.host) && q.port == e.port)
        });
        match known {
            Some(q) => e.password = q.password.clone(),
            None => {
                return Err(format!(
                    "{}: type its password again (only a stored one can stay hidden as ***)",
                    e.label()
                ))
            }
        }
    }
    Ok(())
}

/// One profile row as typed.
#[derive(Debug, Clone, Default)]
pub(super) struct ProfileRow {
    pub name: String,
    /// One pool a line, `host:port[:password]`, primary first.
    pub pools: String,
    pub failover: bool,
    pub down_minutes: String,
    pub back_minutes: String,
    /// One window a line, `HH:MM-HH:MM=N`.
    pub schedule: String,
    /// IANA zone of the windows (empty: `[fleet] time_zone`, else the Pi's).
    pub time_zone: String,
}

impl ProfileRow {
    pub fn of(p: &Profile) -> Self {
        ProfileRow {
            name: p.name.clone(),
            pools: p
                .pools
                .iter()
                .map(|e| {
                    if e.password == "x" || e.password.is_empty() {
                        e.label()
                    } else {
                        // A secret: never sent back; saving `***` keeps the stored one.
                        format!("{}:{HIDDEN}", e.label())
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            failover: p.failover,
            down_minutes: p.down_minutes.to_string(),
            back_minutes: p.back_minutes.to_string(),
            schedule: p
                .schedule
                .iter()
                .map(Window::label)
                .collect::<Vec<_>>()
                .join("\n"),
            time_zone: p.time_zone.clone(),
        }
    }

    /// The profile typed, or every problem with the field it is about.
    pub fn check(&self, id: i64) -> Result<Profile, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let mut pools = Vec::new();
        for line in self.pools.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match Endpoint::parse(line) {
                Ok(e) => pools.push(e),
                Err(e) => errors.push(("pools", e)),
            }
        }
        let mut schedule = Vec::new();
        for line in self
            .schedule
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            match Window::parse(line) {
                Ok(w) => schedule.push(w),
                Err(e) => errors.push(("schedule", e)),
            }
        }
        let mut minutes = |s: &str, field: &'static str| match s.trim() {
            "" => DEFAULT_MINUTES,
            t => t.parse::<u32>().unwrap_or_else(|_| {
                errors.push((field, format!("{t:?}: give whole minutes")));
                DEFAULT_MINUTES
            }),
        };
        let down_minutes = minutes(&self.down_minutes, "down_minutes");
        let back_minutes = minutes(&self.back_minutes, "back_minutes");
        let p = Profile {
            id,
            name: self.name.trim().to_owned(),
            pools,
            failover: self.failover,
            down_minutes,
            back_minutes,
            schedule,
            time_zone: self.time_zone.trim().to_owned(),
        };
        for e in p.check() {
            let field = if e.starts_with("name") {
                "name"
            } else if e.starts_with("time zone") {
                "time_zone"
            } else if e.starts_with("schedule") {
                "schedule"
            } else if e.starts_with("failover") {
                "failover"
            } else {
                "pools"
            };
            errors.push((field, e));
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }
}

/// One miner's desired-state row as typed.
#[derive(Debug, Clone, Default)]
pub(super) struct DesiredForm {
    pub profile_id: String,
    pub address_id: String,
    pub worker: String,
    /// Board key → typed value (`""`: not desired).
    pub board: BTreeMap<String, String>,
}

impl DesiredForm {
    pub fn of(d: &DesiredRow) -> Self {
        let board: Map<String, Value> = serde_json::from_str(&d.board_json).unwrap_or_default();
        DesiredForm {
            profile_id: d.profile_id.map(|i| i.to_string()).unwrap_or_default(),
            address_id: d.address_id.map(|i| i.to_string()).unwrap_or_default(),
            worker: d.worker.clone().unwrap_or_default(),
            board: board
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        v => v.to_string(),
                    };
                    (k, text)
                })
                .collect(),
        }
    }
}

/// A refused fleet section: what was typed and the errors per (row, field).
pub(super) struct FleetRefused {
    /// `profiles` or `desired`.
    pub section: &'static str,
    pub profiles: BTreeMap<i64, ProfileRow>,
    pub desired: BTreeMap<i64, DesiredForm>,
    pub errors: BTreeMap<(i64, String), String>,
}

impl FleetRefused {
    fn error(r: Option<&Self>, section: &str, id: i64, field: &str) -> Option<String> {
        r.filter(|r| r.section == section)
            .and_then(|r| r.errors.get(&(id, field.to_owned())).cloned())
    }
}

fn field_error(e: Option<String>) -> Markup {
    html! { @if let Some(e) = e { small.error.field-error role="alert" { (e) } } }
}

/// Splits `field.id` keys into rows.
fn by_row(form: &[(String, String)]) -> BTreeMap<i64, Vec<(String, String)>> {
    let mut rows: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    for (k, v) in form {
        if let Some((field, id)) = k.rsplit_once('.') {
            if let Ok(id) = id.parse::<i64>() {
                rows.entry(id)
                    .or_default()
                    .push((field.to_owned(), v.clone()));
            }
        }
    }
    rows
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A board key's typed value as stored: numbers and booleans as JSON, else checked by the
/// firmware's own rules when the whole desired state is checked.
fn board_value(key: &str, text: &str) -> Result<Value, String> {
    let t = text.trim();
    match key {
        "invertColors" | "saveStatsToNVS" => match t {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{key}: choose on or off")),
        },
        _ => t
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{key}: {t:?} is not a whole number")),
    }
}

/// `POST /settings/profiles/all`: every profile (and the new one, when named) or none.
pub async fn save_profiles(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Vec<(String, String)>>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let mut typed = BTreeMap::new();
    for (id, fields) in by_row(&form) {
        let row = ProfileRow {
            name: get(&fields, "name").to_owned(),
            pools: get(&fields, "pools").to_owned(),
            failover: get(&fields, "failover") == "on",
            down_minutes: get(&fields, "down_minutes").to_owned(),
            back_minutes: get(&fields, "back_minutes").to_owned(),
            schedule: get(&fields, "schedule").to_owned(),
            time_zone: get(&fields, "time_zone").to_owned(),
        };
        // The empty "new profile" row adds nothing.
        if id == NEW && row.name.trim().is_empty() && row.pools.trim().is_empty() {
            continue;
        }
        typed.insert(id, row);
    }
    let pool = state.pool.clone();
    let stored = blocking(move || pool.with(dbfleet::profiles)).await?;
    let mut errors: BTreeMap<(i64, String), String> = BTreeMap::new();
    let mut valid = Vec::new();
    for (id, row) in &typed {
        match row.check(*id) {
            Ok(mut p) => match restore_passwords(&mut p, &stored) {
                Ok(()) => valid.push(p),
                Err(e) => {
                    errors.insert((*id, "pools".into()), e);
                }
            },
            Err(es) => {
                for (f, e) in es {
                    errors.entry((*id, f.to_owned())).or_insert(e);
                }
            }
        }
    }
    // Two rows with one name would be one profile.
    for (i, a) in valid.iter().enumerate() {
        if valid[..i]
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(&a.name))
        {
            errors.insert(
                (a.id, "name".into()),
                format!(
                    "{:?} is used by two profiles here: pick another name",
                    a.name
                ),
            );
        }
    }
    if errors.is_empty() && !valid.is_empty() {
        let stored = state
            .db
            .send(Write::new(move |conn| {
                let tx = conn.unchecked_transaction()?;
                let mut errors = Vec::new();
                for p in &valid {
                    if let Some(other) = dbfleet::profile_named(&tx, &p.name)? {
                        if other.id != p.id {
                            errors.push((
                                p.id,
                                format!("{:?} is already taken: pick another name", p.name),
                            ));
                            continue;
                        }
                    }
                    dbfleet::save_profile(&tx, p)?;
                }
                if errors.is_empty() {
                    tx.commit()?;
                }
                Ok::<_, rusqlite::Error>(errors)
            }))
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        if stored.is_empty() {
            return Ok(see_other("/settings?saved=profiles#profiles"));
        }
        for (id, e) in stored {
            errors.insert((id, "name".into()), e);
        }
    } else if typed.is_empty() {
        return Ok(see_other("/settings#profiles"));
    }
    for row in typed.values_mut() {
        row.pools = mask_pools(&row.pools);
    }
    refused(
        &req,
        &state,
        FleetRefused {
            section: "profiles",
            profiles: typed,
            desired: BTreeMap::new(),
            errors,
        },
    )
    .await
}

/// `POST /settings/desired/all`: every miner's desired configuration, or none.
pub async fn save_desired(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Vec<(String, String)>>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let mut typed = BTreeMap::new();
    for (id, fields) in by_row(&form) {
        typed.insert(
            id,
            DesiredForm {
                profile_id: get(&fields, "profile_id").trim().to_owned(),
                address_id: get(&fields, "address_id").trim().to_owned(),
                worker: get(&fields, "worker").trim().to_owned(),
                board: BOARD_KEYS
                    .iter()
                    .map(|k| ((*k).to_owned(), get(&fields, k).trim().to_owned()))
                    .filter(|(_, v)| !v.is_empty())
                    .collect(),
            },
        );
    }
    let pool = state.pool.clone();
    let (profiles, addresses, current) = blocking(move || {
        pool.with(|c| {
            let mut current = BTreeMap::new();
            for m in crate::db::miners::list(c)? {
                current.insert(m.id, dbfleet::desired_row(c, m.id)?);
            }
            Ok((dbfleet::profiles(c)?, db::addresses(c)?, current))
        })
    })
    .await?;
    let mut errors: BTreeMap<(i64, String), String> = BTreeMap::new();
    let mut rows: Vec<(i64, DesiredRow)> = Vec::new();
    for (id, f) in &typed {
        let mut err = |field: &str, e: String| {
            errors.entry((*id, field.to_owned())).or_insert(e);
        };
        let Some(old) = current.get(id) else {
            err(
                "",
                "this miner was deleted meanwhile: reload the settings page".into(),
            );
            continue;
        };
        let profile = match choice(&f.profile_id, "profile") {
            Ok(None) => None,
            Ok(Some(pid)) => match profiles.iter().find(|p| p.id == pid) {
                Some(p) => Some(p.clone()),
                None => {
                    err(
                        "profile_id",
                        "that profile no longer exists: reload the page".into(),
                    );
                    None
                }
            },
            Err(e) => {
                err("profile_id", e);
                None
            }
        };
        let address = match choice(&f.address_id, "coin address") {
            Ok(None) => None,
            Ok(Some(aid)) => match addresses.iter().find(|a| a.id == aid) {
                Some(a) => Some(a.clone()),
                None => {
                    err(
                        "address_id",
                        "that coin address no longer exists: reload the page".into(),
                    );
                    None
                }
            },
            Err(e) => {
                err("address_id", e);
                None
            }
        };
        if !f.worker.is_empty() {
            if let Err(e) = worker::check(&f.worker) {
                err("worker", e);
            } else if typed
                .iter()
                .any(|(o, of)| o != id && of.worker.eq_ignore_ascii_case(&f.worker))
            {
                err(
                    "worker",
                    format!("{:?} is another miner's worker name too: the pool could not tell them apart", f.worker),
                );
            }
        }
        let mut board = Map::new();
        for (k, v) in &f.board {
            match board_value(k, v) {
                Ok(v) => {
                    board.insert(k.clone(), v);
                }
                Err(e) => err(k, e),
            }
        }
        let old = old.clone().unwrap_or_default();
        let profile_id = profile.as_ref().map(|p| p.id);
        let active_pool = if old.profile_id == profile_id {
            old.active_pool
        } else {
            0
        };
        // The whole desired state must be writable as it is (the firmware's own rules).
        let desired = Desired {
            profile,
            active_pool: usize::try_from(active_pool).unwrap_or(0),
            address: address.as_ref().map(|a| a.address.clone()),
            worker: (!f.worker.is_empty()).then(|| f.worker.clone()),
            board: board.clone(),
        };
        if let Err(e) = desired.keys() {
            let field = BOARD_KEYS.iter().find(|k| e.contains(**k)).map_or(
                if e.contains("worker") {
                    "worker"
                } else {
                    "address_id"
                },
                |k| *k,
            );
            err(field, e);
        }
        rows.push((
            *id,
            DesiredRow {
                profile_id,
                address_id: address.map(|a| a.id),
                worker: (!f.worker.is_empty()).then(|| f.worker.clone()),
                board_json: Value::Object(board).to_string(),
                active_pool,
            },
        ));
    }
    if errors.is_empty() && !rows.is_empty() {
        state
            .db
            .send(Write::new(move |conn| {
                let tx = conn.unchecked_transaction()?;
                for (id, row) in &rows {
                    dbfleet::set_desired(&tx, *id, row)?;
                }
                tx.commit()
            }))
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        return Ok(see_other("/settings?saved=desired#desired"));
    } else if typed.is_empty() {
        return Ok(see_other("/settings#desired"));
    }
    refused(
        &req,
        &state,
        FleetRefused {
            section: "desired",
            profiles: BTreeMap::new(),
            desired: typed,
            errors,
        },
    )
    .await
}

async fn refused(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    r: FleetRefused,
) -> actix_web::Result<HttpResponse> {
    let how = Rendering {
        fleet: Some(&r),
        ..Rendering::default()
    };
    super::refused_page(req, state, how).await
}

fn profile_row(id: i64, row: &ProfileRow, r: Option<&FleetRefused>) -> Markup {
    let err = |f: &str| field_error(FleetRefused::error(r, "profiles", id, f));
    html! {
        fieldset.item.profile data-id=(id) {
            legend { @if id == NEW { "New profile" } @else { (row.name) } }
            div.row {
                label { "Name" input type="text" name={ "name." (id) } value=(row.name) maxlength="40"; (err("name")) }
                label { "Pools, primary first (host:port[:password], one a line)"
                    textarea name={ "pools." (id) } rows="3" cols="34" spellcheck="false" placeholder="public-pool.io:21496" { (row.pools) }
                    (err("pools"))
                }
                label { "Schedule windows (HH:MM-HH:MM=pool, one a line)"
                    textarea name={ "schedule." (id) } rows="3" cols="18" spellcheck="false" placeholder="22:00-06:00=1" { (row.schedule) }
                    (err("schedule"))
                }
                label { "Time zone of the windows"
                    input type="text" name={ "time_zone." (id) } value=(row.time_zone) size="16" spellcheck="false" placeholder="the Pi's";
                    (err("time_zone"))
                }
            }
            div.row {
                label.switch { input type="checkbox" name={ "failover." (id) } value="on" checked[row.failover]; " fail over from the Pi" (err("failover")) }
                label.words { "after " input type="text" inputmode="numeric" size="3" name={ "down_minutes." (id) } value=(row.down_minutes) aria-label="minutes down before failing over"; " min down; back after " (err("down_minutes")) }
                label.words { input type="text" inputmode="numeric" size="3" name={ "back_minutes." (id) } value=(row.back_minutes) aria-label="minutes the primary must answer before going back"; " min up" (err("back_minutes")) }
                @if id != NEW {
                    button.danger-outline type="submit" formaction={ "/fleet/profiles/" (id) "/delete" } formnovalidate { "Delete" }
                }
            }
        }
    }
}

/// The pool profiles section.
pub(super) fn profiles_section(d: &PageData, r: Option<&FleetRefused>, saved: bool) -> Markup {
    let typed = |id: i64| {
        r.filter(|r| r.section == "profiles")
            .and_then(|r| r.profiles.get(&id))
            .cloned()
    };
    let new_row = typed(NEW).unwrap_or_else(|| ProfileRow {
        down_minutes: DEFAULT_MINUTES.to_string(),
        back_minutes: DEFAULT_MINUTES.to_string(),
        ..ProfileRow::default()
    });
    html! {
        section #profiles {
            h2 { "Pool profiles" }
            @if saved { p.notice.ok { "Saved." } }
            p.muted { "A profile is a primary pool and fallbacks in order. NerdMiner has no fallback pool of its own: with failover on, the Pi writes the next pool when a miner's pool has failed for the minutes given while other miners still reach theirs, and goes back once the primary answered the Pi for as long (at most one automatic write per 30 min, 6 a day). Schedule windows are read in the profile's time zone, else " code { "[fleet] time_zone" } ", else the Pi's own. Test the pools from the Pi and write miners on " a href="/fleet" { "Fleet" } "." }
            form.section method="post" action="/settings/profiles/all" {
                button.save type="submit" { "Save profiles" }
                @if r.is_some_and(|r| r.section == "profiles") { p.error role="alert" { "Nothing in this section was saved: correct the fields marked beside them and save again." } }
                @for p in &d.profiles {
                    (profile_row(p.id, &typed(p.id).unwrap_or_else(|| ProfileRow::of(p)), r))
                }
                (profile_row(NEW, &new_row, r))
            }
        }
    }
}

/// The desired configuration section: one row per miner.
pub(super) fn desired_section(d: &PageData, r: Option<&FleetRefused>, saved: bool) -> Markup {
    let profiles: Vec<(i64, &str)> = d.profiles.iter().map(|p| (p.id, p.name.as_str())).collect();
    let addrs: Vec<(i64, &str)> = d
        .addresses
        .iter()
        .map(|a| (a.id, a.label.as_str()))
        .collect();
    let mine = r.filter(|r| r.section == "desired");
    html! {
        section #desired {
            h2 { "Desired configuration" }
            @if saved { p.notice.ok { "Saved. " a href="/fleet#drift" { "Reconcile on Fleet" } " writes it to the miners (canary first)." } }
            @if d.miners.is_empty() {
                p.muted { "No miners yet." }
            } @else {
                p.muted { "What each miner should be configured as. Blank board keys are left as the miner has them. Nothing is written to a miner from here: " a href="/fleet#drift" { "Fleet" } " shows the drift and reconciles the chosen miners through the canary rollout." }
                form.section method="post" action="/settings/desired/all" {
                    button.save type="submit" { "Save desired configuration" }
                    @if mine.is_some() { p.error role="alert" { "Nothing in this section was saved: correct the fields marked beside them and save again." } }
                    @for m in &d.miners {
                        @let row = mine.and_then(|r| r.desired.get(&m.id)).cloned().unwrap_or_else(|| d.desired.get(&m.id).map(DesiredForm::of).unwrap_or_default());
                        @let err = |f: &str| field_error(FleetRefused::error(r, "desired", m.id, f));
                        fieldset.item.row data-id=(m.id) {
                            legend { (m.name) }
                            label { "Profile" (select(&format!("profile_id.{}", m.id), "— none —", &profiles, &row.profile_id)) (err("profile_id")) }
                            label { "Payout address" (select(&format!("address_id.{}", m.id), "— none —", &addrs, &row.address_id)) (err("address_id")) }
                            label { "Worker name" input type="text" name={ "worker." (m.id) } value=(row.worker) maxlength="32" spellcheck="false" placeholder=(worker::from_name(&m.name)); (err("worker")) }
                            @for key in BOARD_KEYS {
                                @let v = row.board.get(key).cloned().unwrap_or_default();
                                label {
                                    (key)
                                    @if key == "invertColors" || key == "saveStatsToNVS" {
                                        select name={ (key) "." (m.id) } {
                                            option value="" { "— as it is —" }
                                            option value="true" selected[v == "true"] { "on" }
                                            option value="false" selected[v == "false"] { "off" }
                                        }
                                    } @else {
                                        input type="text" inputmode="numeric" size="4" name={ (key) "." (m.id) } value=(v) placeholder="as it is";
                                    }
                                    (err(key))
                                }
                            }
                            (err(""))
                        }
                    }
                }
            }
        }
    }
}
