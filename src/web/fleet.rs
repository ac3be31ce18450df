//! `/fleet`: pool profiles (add, test from the Pi, remove) and each miner's desired
//! configuration against its read-back, with a drift filter and a button that reconciles the
//! chosen miners through the canary rollout. `GET /api/fleet` is the same as JSON.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde_json::json;

use super::api::{blocking, fresh_json};
use super::error::ApiError;
use super::frame::layout;
use super::{csrf, AppState};
use crate::db::fleet::{self as dbfleet, FleetMiner};
use crate::db::Write;
use crate::fleet::drift::Drift;
use crate::fleet::probe::{probe, ProbeResult, TIMEOUT};
use crate::fleet::profile::{Endpoint, Profile, Window, DEFAULT_MINUTES};
use crate::rollout::{self, Rollout};

/// Query of `GET /fleet`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct FleetQuery {
    /// `in_sync`, `drifted` or `unknown`: show only those miners.
    pub drift: Option<String>,
    /// A rollout started from this page, to show its progress.
    pub rollout: Option<u64>,
}

/// The profile form as posted.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ProfileForm {
    /// `test` (show the pools' answers, save nothing) or `save`.
    #[serde(default)]
    pub action: String,
    /// Profile name.
    #[serde(default)]
    pub name: String,
    /// Primary pool host.
    #[serde(default)]
    pub host: String,
    /// Primary pool port.
    #[serde(default)]
    pub port: String,
    /// Primary pool password.
    #[serde(default)]
    pub password: String,
    /// Fallbacks, one `host:port[:password]` a line, in order.
    #[serde(default)]
    pub fallbacks: String,
    /// `on` when failover is wanted.
    #[serde(default)]
    pub failover: Option<String>,
    /// Minutes down before failing over.
    #[serde(default)]
    pub down_minutes: String,
    /// Minutes up before going back.
    #[serde(default)]
    pub back_minutes: String,
    /// Windows, one `HH:MM-HH:MM=N` a line (`[fleet] time_zone` or the Pi's zone).
    #[serde(default)]
    pub schedule: String,
    /// IANA zone of the windows (empty: `[fleet] time_zone`, else the Pi's).
    #[serde(default)]
    pub time_zone: String,
}

impl ProfileForm {
    /// The profile the form describes, or every problem with it.
    fn profile(&self) -> Result<Profile, Vec<String>> {
        let mut errors = Vec::new();
        let port = match self.port.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                errors.push("primary: the port must be a number from 1 to 65535".to_string());
                0
            }
        };
        let password = if self.password.is_empty() {
            "x".to_string()
        } else {
            self.password.clone()
        };
        let mut pools = vec![Endpoint {
            host: self.host.trim().to_owned(),
            port,
            password,
        }];
        for line in self
            .fallbacks
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            match Endpoint::parse(line) {
                Ok(e) => pools.push(e),
                Err(e) => errors.push(format!("fallback: {e}")),
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
                Err(e) => errors.push(format!("schedule: {e}")),
            }
        }
        let minutes = |s: &str, what: &str, errors: &mut Vec<String>| {
            if s.trim().is_empty() {
                return DEFAULT_MINUTES;
            }
            s.trim().parse::<u32>().unwrap_or_else(|_| {
                errors.push(format!("{what}: give whole minutes"));
                DEFAULT_MINUTES
            })
        };
        let down_minutes = minutes(&self.down_minutes, "down minutes", &mut errors);
        let back_minutes = minutes(&self.back_minutes, "back minutes", &mut errors);
        let p = Profile {
            id: 0,
            name: self.name.trim().to_owned(),
            pools,
            failover: self.failover.is_some(),
            down_minutes,
            back_minutes,
            schedule,
            time_zone: self.time_zone.trim().to_owned(),
        };
        if port > 0 {
            errors.extend(p.check());
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }
}

/// What the profile form shows after a post.
#[derive(Debug, Default)]
struct FormState {
    form: ProfileForm,
    errors: Vec<String>,
    tests: Vec<ProbeResult>,
}

async fn load(state: &AppState) -> Result<(Vec<Profile>, Vec<FleetMiner>), ApiError> {
    let pool = state.pool.clone();
    blocking(move || pool.with(|c| Ok((dbfleet::profiles(c)?, dbfleet::fleet(c)?)))).await
}

/// `GET /api/fleet`: profiles and every miner's desired keys and drift.
pub async fn api(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let (mut profiles, mut miners) = load(&state).await?;
    // Pool passwords are secrets: never sent back (the usual `x` says nothing).
    let hide = |pw: &mut String| {
        if pw != "x" && !pw.is_empty() {
            *pw = "***".into();
        }
    };
    for p in &mut profiles {
        for e in &mut p.pools {
            hide(&mut e.password);
        }
    }
    for m in &mut miners {
        if let Some(serde_json::Value::String(pw)) = m.desired.get_mut("poolPassword") {
            hide(pw);
        }
    }
    Ok(fresh_json(
        &json!({ "profiles": profiles, "miners": miners }),
    ))
}

/// `GET /fleet`.
pub async fn page(
    state: web::Data<AppState>,
    query: web::Query<FleetQuery>,
) -> actix_web::Result<HttpResponse> {
    render(&state, &query.into_inner(), FormState::default()).await
}

async fn render(
    state: &AppState,
    query: &FleetQuery,
    form: FormState,
) -> actix_web::Result<HttpResponse> {
    let (profiles, miners) = load(state).await?;
    let rollout = query.rollout.and_then(|id| state.rollouts.get(id));
    let body = view(
        &profiles,
        &miners,
        query.drift.as_deref(),
        rollout.as_ref(),
        &form,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(layout("Fleet", body).into_string()))
}

/// `POST /fleet/profiles`: test the pools (and show the answers) or save the profile.
pub async fn save_profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ProfileForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let form = form.into_inner();
    let profile = match form.profile() {
        Ok(p) => p,
        Err(errors) => {
            let st = FormState {
                form,
                errors,
                tests: vec![],
            };
            let mut page = render(&state, &FleetQuery::default(), st).await?;
            *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(page);
        }
    };
    if form.action == "test" {
        let pools = profile.pools.clone();
        let tests = web::block(move || pools.iter().map(|p| probe(p, TIMEOUT)).collect())
            .await
            .map_err(ApiError::from)?;
        let st = FormState {
            form,
            errors: vec![],
            tests,
        };
        return render(&state, &FleetQuery::default(), st).await;
    }
    let saved = state
        .db
        .send(Write::new(move |c| {
            let mut p = profile;
            if let Some(old) = dbfleet::profile_named(c, &p.name)? {
                p.id = old.id;
            }
            dbfleet::save_profile(c, &p)
        }))
        .await
        .map_err(ApiError::from)?;
    saved.map_err(ApiError::from)?;
    Ok(see_other("/fleet"))
}

/// `POST /fleet/profiles/{id}/delete`.
pub async fn delete_profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let id = path.into_inner();
    state
        .db
        .send(Write::new(move |c| {
            c.execute("DELETE FROM pool_profiles WHERE id = ?1", [id])
        }))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    Ok(see_other("/fleet"))
}

/// `POST /fleet/reconcile` (form: `miner=ID` repeated, in the order shown; the first is the
/// canary): tests the pools from the Pi, then writes each chosen miner's desired keys through
/// a canary rollout.
pub async fn reconcile(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Vec<(String, String)>>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let ids: Vec<i64> = form
        .iter()
        .filter(|(k, _)| k == "miner")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let (_, miners) = load(&state).await?;
    let mut chosen = Vec::new();
    for id in ids {
        let Some(m) = miners.iter().find(|m| m.id == id) else {
            return Ok(message(&format!(
                "There is no miner with id {id} any more."
            )));
        };
        if let Some(p) = &m.problem {
            return Ok(message(&format!("{} was not written: {p}", m.name)));
        }
        if !m.desired.is_empty() {
            chosen.push((m.id, m.name.clone(), m.desired.clone()));
        }
    }
    // Each pool is tested from the Pi before it is written anywhere.
    let mut pools: Vec<Endpoint> = Vec::new();
    for (_, _, change) in &chosen {
        let host = change.get("poolString").and_then(|v| v.as_str());
        let port = change
            .get("portNumber")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        if let (Some(host), Some(port)) = (host, port) {
            let e = Endpoint {
                host: host.to_owned(),
                port,
                password: String::new(),
            };
            if !pools.contains(&e) {
                pools.push(e);
            }
        }
    }
    let tests: Vec<ProbeResult> =
        web::block(move || pools.iter().map(|p| probe(p, TIMEOUT)).collect())
            .await
            .map_err(ApiError::from)?;
    if let Some(bad) = tests.iter().find(|t| !t.ok) {
        return Ok(message(&format!(
            "Nothing was written: the pool {} did not answer the test from the Pi: {}",
            bad.pool, bad.detail
        )));
    }
    let plan = match Rollout::plan_each(0, chosen) {
        Ok(p) => p,
        Err(e) => return Ok(message(&format!("Nothing was written: {e}"))),
    };
    let id = state.rollouts.add(plan);
    actix_web::rt::spawn(rollout::run(
        state.rollouts.clone(),
        id,
        state.pool.clone(),
        state.db.clone(),
        state.supervisor.clone(),
    ));
    Ok(see_other(&format!("/fleet?rollout={id}")))
}

fn time_cell(ms: i64) -> Markup {
    let text = chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    html! { span.ts data-ts=(ms) { (text) } }
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to.to_owned()))
        .finish()
}

fn message(text: &str) -> HttpResponse {
    let body =
        html! { h1 { "Fleet" } p.error { (text) } p { a href="/fleet" { "Back to the fleet" } } };
    HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body(layout("Fleet", body).into_string())
}

fn drift_badge(d: &Drift) -> Markup {
    match d {
        Drift::Unknown => {
            html! { span.badge.drift-unknown title="never read: read its configuration on its manage page" { "unknown" } }
        }
        Drift::InSync => html! { span.badge.drift-in_sync { "in sync" } },
        Drift::Drifted { keys } => {
            html! { span.badge.drift-drifted { "drifted" } " " small { (keys.join(", ")) } }
        }
    }
}

fn view(
    profiles: &[Profile],
    miners: &[FleetMiner],
    filter: Option<&str>,
    rollout: Option<&Rollout>,
    form: &FormState,
) -> Markup {
    let count = |name: &str| miners.iter().filter(|m| m.drift.name() == name).count();
    let shown: Vec<&FleetMiner> = miners
        .iter()
        .filter(|m| filter.is_none_or(|f| f.is_empty() || m.drift.name() == f))
        .collect();
    let f = &form.form;
    html! {
        h1 { "Fleet configuration" }
        p.muted { "Pool profiles and each miner's desired configuration. Writes go through the safe configuration write, canary first." }
        @if let Some(r) = rollout {
            section.card #rollout {
                h2 { "Rollout" }
                p #rollout-summary { (r.summary()) }
                ul { @for m in &r.miners { li { (m.name) ": " (serde_json::to_value(&m.state).ok().and_then(|v| v["state"].as_str().map(str::to_owned)).unwrap_or_default()) } } }
                p { a href={"/fleet?rollout=" (r.id)} { "Refresh" } }
            }
        }
        section.card #profiles {
            h2 { "Pool profiles" }
            @if profiles.is_empty() { p.muted { "No profile yet." } }
            @else {
                div.table-scroll {
                table {
                    thead { tr { th { "Name" } th { "Primary → fallbacks" } th { "Failover" } th { "Schedule (local time)" } th {} } }
                    tbody { @for p in profiles { tr {
                        td { (p.name) }
                        td { (p.pools.iter().map(Endpoint::label).collect::<Vec<_>>().join(" → ")) }
                        td { @if p.failover { "after " (p.down_minutes) " min; back after " (p.back_minutes) " min" } @else { "off" } }
                        td { (p.schedule.iter().map(Window::label).collect::<Vec<_>>().join(", ")) @if !p.time_zone.is_empty() && !p.schedule.is_empty() { " (" (p.time_zone) ")" } }
                        td { form method="post" action={"/fleet/profiles/" (p.id) "/delete"} { button.secondary type="submit" { "Remove" } } }
                    } } }
                }
                }
            }
            h3 { "Add or replace a profile" }
            @if !form.errors.is_empty() { ul.error #profile-errors { @for e in &form.errors { li { (e) } } } }
            @if !form.tests.is_empty() {
                div.table-scroll {
                table #profile-tests {
                    thead { tr { th { "Pool" } th { "Test from the Pi" } th { "Detail" } } }
                    tbody { @for t in &form.tests { tr {
                        td { (t.pool) }
                        td { @if t.ok { span.badge.verdict-ok { "answers" } } @else { span.badge.verdict-fail { "failed" } } @if let Some(ms) = t.millis { " " (ms) " ms" } }
                        td { (t.detail) }
                    } } }
                }
                }
            }
            form.profile-form method="post" action="/fleet/profiles" {
                label { "Name " input name="name" required value=(f.name); }
                label { "Primary host " input name="host" required placeholder="public-pool.io" value=(f.host); }
                label { "Port " input name="port" required inputmode="numeric" placeholder="21496" value=(f.port); }
                label { "Password " input name="password" placeholder="x" value=(f.password); }
                label { "Fallbacks, in order (host:port[:password], one a line) " textarea name="fallbacks" rows="3" { (f.fallbacks) } }
                label { input type="checkbox" name="failover" checked[f.failover.is_some()]; " Fail over from the Pi when the pool is down" }
                label { "after (min) " input name="down_minutes" inputmode="numeric" placeholder="10" value=(f.down_minutes); }
                label { "back after the primary answered for (min) " input name="back_minutes" inputmode="numeric" placeholder="10" value=(f.back_minutes); }
                label { "Schedule windows (local time; HH:MM-HH:MM=N, N the pool: 0 primary) " textarea name="schedule" rows="2" { (f.schedule) } }
                label { "Time zone of the windows " input name="time_zone" placeholder="the Pi's, e.g. Europe/Berlin" value=(f.time_zone); }
                button.secondary type="submit" name="action" value="test" { "Test from the Pi" }
                " "
                button type="submit" name="action" value="save" { "Save" }
            }
        }
        section.card #drift {
            h2 { "Desired state and drift" }
            nav.filters {
                a href="/fleet" { "All (" (miners.len()) ")" } " · "
                a href="/fleet?drift=in_sync" { "In sync (" (count("in_sync")) ")" } " · "
                a href="/fleet?drift=drifted" { "Drifted (" (count("drifted")) ")" } " · "
                a href="/fleet?drift=unknown" { "Unknown (" (count("unknown")) ")" }
            }
            p.muted { "Set a miner's desired configuration with " code { "shepherd miners set NAME --profile P --address A [--worker W]" } "." }
            form method="post" action="/fleet/reconcile" {
                div.table-scroll {
                table {
                    thead { tr { th {} th { "Miner" } th { "Profile" } th { "Pool" } th { "Worker" } th { "Drift" } th { "Read" } } }
                    tbody { @for m in &shown { tr data-drift=(m.drift.name()) {
                        td { input type="checkbox" name="miner" value=(m.id) checked[matches!(m.drift, Drift::Drifted { .. })] disabled[m.desired.is_empty() || m.problem.is_some()]; }
                        td { a href={"/miners/manage/" (m.id)} { (m.name) } }
                        td { (m.profile.as_deref().unwrap_or("—")) }
                        td { (m.desired.get("poolString").and_then(|v| v.as_str()).unwrap_or("—")) @if m.active_pool > 0 { " " small { "(fallback " (m.active_pool) ")" } } }
                        td { @match (&m.worker, &m.pool_page) {
                            (Some(w), Some(url)) => a href=(url) rel="noopener noreferrer" target="_blank" { (w) },
                            (Some(w), None) => (w),
                            _ => "—",
                        } }
                        td { (drift_badge(&m.drift)) @if let Some(p) = &m.problem { br; small.error { (p) } } }
                        td { @match m.read_at { Some(at) => (time_cell(at)), None => "never" } }
                    } } }
                }
                }
                button type="submit" { "Reconcile selected (canary first)" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_whole() {
        let form = ProfileForm {
            name: "night".into(),
            host: "public-pool.io".into(),
            port: "21496".into(),
            fallbacks: "solo.ckpool.org:3333\n\n".into(),
            failover: Some("on".into()),
            schedule: "22:00-06:00=1".into(),
            ..ProfileForm::default()
        };
        let p = form.profile().unwrap();
        assert_eq!(p.pools.len(), 2);
        assert_eq!(p.pools[0].password, "x");
        assert!(p.failover);
        let bad = ProfileForm {
            port: "0".into(),
            fallbacks: "nope".into(),
            schedule: "later".into(),
            ..form
        };
        let errors = bad.profile().unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn the_page_escapes_and_filters() {
        let m = |name: &str, drift: Drift| FleetMiner {
            id: 1,
            name: name.into(),
            profile: None,
            active_pool: 0,
            worker: Some("w".into()),
            desired: serde_json::Map::new(),
            problem: None,
            drift,
            read_at: None,
            pool_page: None,
        };
        let miners = vec![
            m("<b>x</b>", Drift::InSync),
            m(
                "gone",
                Drift::Drifted {
                    keys: vec!["poolString".into()],
                },
            ),
        ];
        let html = view(&[], &miners, Some("drifted"), None, &FormState::default()).into_string();
        assert!(!html.contains("<b>x</b>"));
        assert!(html.contains("gone") && html.contains("poolString"));
        assert!(html.contains("Drifted (1)"));
    }
}
