//! Optional password login for everything that changes state.
//!
//! With `[web] password` set, every POST except `/login` itself needs a session cookie that
//! `/login` hands out after a constant-time password comparison. Sessions are random tokens
//! kept in memory: nothing to store on the SD card, and a restart simply logs everyone out.
//! Pages and kiosks stay readable without a login, so a wall screen never needs one. The
//! same-origin check ([`super::csrf`]) still applies to every form, logged in or not.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::pages::layout;
use super::{csrf, AppState};

/// Name of the session cookie.
pub const COOKIE: &str = "shepherd_session";
/// Most sessions kept; the oldest half is dropped beyond it so memory stays bounded.
const MAX_SESSIONS: usize = 256;

/// Logged-in session tokens.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashSet<String>>>);

impl Sessions {
    /// Starts a session; `None` if the system has no randomness to give (then nobody logs in).
    pub fn start(&self) -> Option<String> {
        let token = random_token()?;
        let mut set = self.0.lock().ok()?;
        if set.len() >= MAX_SESSIONS {
            let drop: Vec<String> = set.iter().take(MAX_SESSIONS / 2).cloned().collect();
            for t in drop {
                set.remove(&t);
            }
        }
        set.insert(token.clone());
        Some(token)
    }

    /// Whether `token` is a live session.
    pub fn valid(&self, token: &str) -> bool {
        self.0.lock().map(|s| s.contains(token)).unwrap_or(false)
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(token);
        }
    }
}

/// 32 random bytes from the kernel, as hex.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guessed password was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Whether this request may change state.
pub fn allowed(state: &AppState, req: &HttpRequest) -> bool {
    state.config.web.password.is_empty()
        || req
            .cookie(COOKIE)
            .is_some_and(|c| state.sessions.valid(c.value()))
}

/// Middleware: refuses a POST without a session while a password is set (401 with a link to
/// the login page). Everything else passes untouched.
pub async fn gate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let open = req.method() != Method::POST
        || req.path() == "/login"
        || req
            .app_data::<web::Data<AppState>>()
            .is_none_or(|state| allowed(state, req.request()));
    if open {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let body = layout(
        "Log in",
        html! {
            h1 { "Log in first" }
            p { "Changing settings needs the password set in " code { "[web] password" } "." }
            p { a href="/login" { "Log in" } }
        },
    );
    let resp = HttpResponse::build(StatusCode::UNAUTHORIZED)
        .content_type("text/html; charset=utf-8")
        .body(body.into_string());
    Ok(req.into_response(resp).map_into_right_body())
}

/// The login form as sent.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
}

fn login_form(status: StatusCode, message: Option<&str>, enabled: bool) -> HttpResponse {
    let body = layout(
        "Log in",
        html! {
            h1 { "Log in" }
            @if !enabled {
                p.notice { "No password is set (" code { "[web] password" } " in config.toml), so no login is needed." }
            } @else {
                form.row method="post" action="/login" {
                    label { "Password " input type="password" name="password" autocomplete="current-password" autofocus required; }
                    button type="submit" { "Log in" }
                    @if let Some(m) = message { p.error role="alert" { (m) } }
                }
            }
        },
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body.into_string())
}

/// `GET /login`
pub async fn login_page(state: web::Data<AppState>) -> HttpResponse {
    login_form(StatusCode::OK, None, !state.config.web.password.is_empty())
}

/// `POST /login`: a right password sets the session cookie and goes to the settings.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let wanted = state.config.web.password.as_bytes();
    if wanted.is_empty() {
        return Ok(login_form(StatusCode::OK, None, false));
    }
    if !constant_time_eq(form.password.as_bytes(), wanted) {
        return Ok(login_form(
            StatusCode::UNAUTHORIZED,
            Some("Wrong password."),
            true,
        ));
    }
    let Some(token) = state.sessions.start() else {
        return Err(actix_web::error::ErrorInternalServerError(
            "cannot read /dev/urandom to make a session token",
        ));
    };
    let cookie = Cookie::build(COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/settings"))
        .finish())
}

/// `POST /logout`
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    if let Some(c) = req.cookie(COOKIE) {
        state.sessions.end(c.value());
    }
    let mut gone = Cookie::build(COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"hunter2", b"hunter2"));
        assert!(!constant_time_eq(b"hunter2", b"hunter3"));
        assert!(!constant_time_eq(b"hunter2", b"hunter"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn sessions_come_and_go() {
        let s = Sessions::default();
        let t = s.start().unwrap();
        assert_eq!(t.len(), 64);
        assert!(s.valid(&t));
        assert!(!s.valid("nope"));
        s.end(&t);
        assert!(!s.valid(&t));
    }
}
