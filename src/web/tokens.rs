//! Read-only tokens on `/settings`: kiosks and Prometheus cannot log in, so with
//! `[web] protect = "all"` they show a token instead (`/kiosk/clock?token=…`,
//! `Authorization: Bearer …` for `/metrics`). A token is shown once when made; only its SHA-256
//! is stored, and revoking it takes effect at once.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{random_token, token_digest};
use super::error::ApiError;
use super::format::utc_time;
use super::frame::{error_page, layout};
use super::{csrf, AppState};
use crate::config::Protect;
use crate::db::read_tokens::{self, TokenRow};
use crate::db::Write;

/// The new-token form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    label: String,
}

/// The "Read-only tokens" section of `/settings`.
pub fn section(state: &AppState, tokens: &[TokenRow]) -> Markup {
    let needed = state.password.is_set() && state.config.web.protect == Protect::All;
    html! {
        section #tokens {
            h2 { "Read-only tokens" }
            @if needed {
                p.muted { "Every page needs the login (" code { "[web] protect = \"all\"" } "). Kiosk screens and Prometheus show a token instead: it opens the kiosk pages, the data they poll and " code { "/metrics" } ", nothing else." }
            } @else {
                p.muted { "Needed only with a password and " code { "[web] protect = \"all\"" } " in config.toml: then kiosk screens and Prometheus show a token instead of logging in." }
            }
            @for t in tokens {
                div.item {
                    form.inline method="post" action={ "/settings/tokens/" (t.id) "/revoke" } {
                        span { (t.label) } " " span.muted { "made " (utc_time(Some(t.created_at))) } " "
                        button.secondary type="submit" { "Revoke" }
                    }
                }
            }
            form.row method="post" action="/settings/tokens" {
                label { "What it is for " input type="text" name="label" placeholder="kitchen kiosk" maxlength="64" required; }
                button type="submit" { "Make a token" }
            }
        }
    }
}

/// `POST /settings/tokens`: makes a token and shows it, once.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let label = form.label.trim().to_owned();
    if label.chars().count() > 64
        || label.chars().any(char::is_control)
        || crate::names::looks_empty(&label)
    {
        return Ok(error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not saved",
            "Say what the token is for: 1 to 64 visible characters.",
        ));
    }
    let Some(token) = random_token() else {
        return Err(ApiError::Internal("cannot read /dev/urandom to make a token".into()).into());
    };
    let digest = token_digest(&token);
    let stored_label = label.clone();
    let digests = state
        .db
        .send(Write::new(move |c| {
            read_tokens::add(c, &stored_label, &digest)?;
            read_tokens::digests(c)
        }))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    state.read_tokens.replace(digests);
    tracing::info!(label, "read-only token made");
    let host = req.connection_info().host().to_owned();
    let body = layout(
        "Token made",
        html! {
            h1 { "Token for " (label) }
            p.notice { "Copy it now: it is not stored and cannot be shown again." }
            p { code #new-token { (token) } }
            h2 { "Kiosk" }
            p { code { "http://" (host) "/kiosk/clock?token=" (token) } }
            h2 { "Prometheus" }
            pre { "scrape_configs:\n  - job_name: shepherd\n    authorization:\n      credentials: " (token) "\n    static_configs:\n      - targets: [\"" (host) "\"]" }
            p { a href="/settings#tokens" { "Back to the settings" } }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.into_string()))
}

/// `POST /settings/tokens/{id}/revoke`
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let id = path.into_inner();
    let (existed, digests) = state
        .db
        .send(Write::new(move |c| {
            Ok((read_tokens::revoke(c, id)?, read_tokens::digests(c)?))
        }))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    state.read_tokens.replace(digests);
    if existed {
        tracing::info!(id, "read-only token revoked");
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/settings#tokens"))
        .finish())
}
