//! `/settings`: create, edit and delete miners (name, port, pool, address), pools (name, URL,
//! port, password) and coin addresses (label, checked Bitcoin address), and change the alert
//! rules (stored as overrides of config.toml's `[alerts]`, see [`crate::db::alert_settings`]). A refused form comes
//! back (422) with everything typed and the reason beside it; deleting a pool or address that
//! miners use, or any miner, first asks and says what will happen. The miners section also
//! finds AxeOS miners on a subnet (see [`scan`]). Every POST passes the
//! same-origin check and, when a password is set, the login gate (see [`super::auth`]).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use rusqlite::OptionalExtension;
use serde::Deserialize;

use super::api::blocking;
use super::error::ApiError;
use super::frame::{error_page, layout};
use super::{auth, csrf, AppState};
use crate::address;
use crate::config::{AlertsConfig, RuleField, ALERT_RULE_KEYS};
use crate::db::alert_settings;
use crate::db::miners as miner_rules;
use crate::db::settings::{self as db, AddressRow, Kind, MinerRow, PoolRow};
use crate::db::Write;
use crate::supervisor::MinersChanged;

mod alerts;
mod bulk;
mod fleet;
mod form;
mod scan;
#[cfg(test)]
mod tests;
mod view;

use alerts::*;
pub use bulk::save_section;
use bulk::BulkRefused;
pub use fleet::{save_desired, save_profiles};
use form::*;
pub use scan::scan_subnet;
use scan::ScanRefused;
use view::*;

/// Everything the page shows.
struct PageData {
    miners: Vec<MinerRow>,
    pools: Vec<PoolRow>,
    addresses: Vec<AddressRow>,
    /// Alert rule keys changed on this page (key, value).
    alert_overrides: Vec<(String, String)>,
    /// Read-only tokens.
    tokens: Vec<crate::db::read_tokens::TokenRow>,
    /// Pool profiles.
    profiles: Vec<crate::fleet::Profile>,
    /// Each miner's desired configuration, by miner id (absent: nothing desired yet).
    desired: std::collections::HashMap<i64, crate::db::fleet::DesiredRow>,
}

fn load(state: &AppState) -> Result<PageData, crate::db::DbError> {
    state.pool.with(|c| {
        Ok(PageData {
            miners: db::miners(c)?,
            pools: db::pools(c)?,
            addresses: db::addresses(c)?,
            alert_overrides: alert_settings::overrides(c)?,
            tokens: crate::db::read_tokens::list(c)?,
            profiles: crate::db::fleet::profiles(c)?,
            desired: {
                let mut d = std::collections::HashMap::new();
                for m in crate::db::miners::list(c)? {
                    if let Some(row) = crate::db::fleet::desired_row(c, m.id)? {
                        d.insert(m.id, row);
                    }
                }
                d
            },
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
    /// (key, why) for each field that is wrong on its own, shown beside it.
    field_errors: Vec<(String, String)>,
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
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?,
    };
    match outcome {
        Ok(Some(_)) => {
            if kind == Kind::Miner {
                // Start, move or rename the reader now rather than at the next poll.
                state.supervisor.do_send(MinersChanged);
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
            if let Some(id) = id {
                // A stored row is shown in its section's form: the error goes beside it there.
                let refused = BulkRefused {
                    kind,
                    rows: [(id, form)].into(),
                    errors: [((id, ""), message)].into(),
                };
                let how = Rendering {
                    bulk: Some(&refused),
                    ..Rendering::default()
                };
                return refused_page(&req, &state, how).await;
            }
            let refused = Refused {
                kind,
                id,
                form,
                message,
            };
            let how = Rendering {
                refused: Some(&refused),
                ..Rendering::default()
            };
            refused_page(&req, &state, how).await
        }
    }
}

/// The settings page again, 422, with what was refused shown beside its fields as `how` says.
async fn refused_page(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    how: Rendering<'_>,
) -> actix_web::Result<HttpResponse> {
    let st = state.clone().into_inner();
    let data = blocking(move || load(&st)).await?;
    Ok(html_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        render_page(req, state, &data, how),
    ))
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
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    if kind == Kind::Miner {
        state.supervisor.do_send(MinersChanged);
    }
    Ok(see_other(&format!(
        "/settings?saved={0}#{0}",
        kind_path(kind)
    )))
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
                .map_err(ApiError::from)?
                .map_err(ApiError::from)?;
            Ok(see_other("/settings?saved=alerts#alert-rules"))
        }
        Err(message) => {
            let field_errors = alert_field_errors(base, &typed);
            let refused = AlertsRefused {
                typed,
                message,
                field_errors,
            };
            let how = Rendering {
                alerts_refused: Some(&refused),
                ..Rendering::default()
            };
            refused_page(&req, &state, how).await
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
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    Ok(see_other("/settings?saved=alerts#alert-rules"))
}
