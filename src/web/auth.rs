//! Optional password login, read-only tokens, and what each needs.
//!
//! With `[web] password` set, every POST except `/login` itself needs a session cookie that
//! `/login` hands out after checking the password against its Argon2id hash; so do backups
//! (they hold a miner's whole configuration) and, with `protect = "all"`, every page and API.
//! Sessions are random tokens kept in memory that expire after `session_days`: nothing to
//! store on the SD card, and a restart simply logs everyone out. Failed logins are counted per
//! client and, past a few, answered with growing waits (429) before the password is even
//! looked at. Kiosks and Prometheus cannot log in: they get read-only tokens (made and revoked
//! on `/settings`, only their SHA-256 stored) that open the kiosk pages and the data they poll,
//! nothing else. The same-origin check ([`super::csrf`]) still applies to every form.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::ServiceRequest;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::frame::layout;
use super::{csrf, request, AppState};
use crate::config::{Protect, WebConfig};

/// Name of the session cookie.
pub const COOKIE: &str = "shepherd_session";
/// Most sessions kept; expired ones, then the oldest, are dropped beyond it.
const MAX_SESSIONS: usize = 256;

/// The password the login compares with: always an Argon2id hash (a plain password from an
/// old config is hashed in memory at start).
#[derive(Clone)]
pub struct Password {
    hash: Option<String>,
}

impl Password {
    /// From `[web] password`: "" (no login), a `$argon2…` hash, or a plain password (hashed
    /// here; the caller warns). Err when a hash is malformed or randomness is missing.
    pub fn from_config(value: &str) -> Result<(Password, bool), String> {
        if value.is_empty() {
            return Ok((Password { hash: None }, false));
        }
        if value.starts_with("$argon2") {
            PasswordHash::new(value).map_err(|e| {
                format!(
                    "[web] password looks like an Argon2 hash but is not a valid one ({e}): \
                     run `shepherd passwd` to write a new one"
                )
            })?;
            return Ok((
                Password {
                    hash: Some(value.to_owned()),
                },
                false,
            ));
        }
        Ok((
            Password {
                hash: Some(hash_password(value)?),
            },
            true,
        ))
    }

    /// Whether a login is needed at all.
    pub fn is_set(&self) -> bool {
        self.hash.is_some()
    }

    /// Whether `attempt` is the password (slow on purpose: run it off the event loop).
    pub fn verify(&self, attempt: &str) -> bool {
        self.hash.as_deref().is_some_and(|h| {
            PasswordHash::new(h).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(attempt.as_bytes(), &parsed)
                    .is_ok()
            })
        })
    }
}

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes, as OWASP
/// recommends) and a random salt, as a PHC string (`$argon2id$v=19$…`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = random_bytes::<16>().ok_or("cannot read /dev/urandom for a salt")?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Logged-in sessions: token → when it expires.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Instant>>>);

impl Sessions {
    /// Starts a session lasting `ttl`; `None` if the system has no randomness to give (then
    /// nobody logs in).
    pub fn start(&self, ttl: Duration) -> Option<String> {
        let token = random_token()?;
        let now = Instant::now();
        let mut map = self.0.lock().ok()?;
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, expiry| *expiry > now);
        }
        if map.len() >= MAX_SESSIONS {
            let mut by_age: Vec<(String, Instant)> =
                map.iter().map(|(t, e)| (t.clone(), *e)).collect();
            by_age.sort_by_key(|(_, e)| *e);
            for (t, _) in by_age.into_iter().take(MAX_SESSIONS / 2) {
                map.remove(&t);
            }
        }
        map.insert(token.clone(), now + ttl);
        Some(token)
    }

    /// Whether `token` is a live, unexpired session.
    pub fn valid(&self, token: &str) -> bool {
        self.valid_at(token, Instant::now())
    }

    fn valid_at(&self, token: &str, now: Instant) -> bool {
        self.0
            .lock()
            .map(|s| s.get(token).is_some_and(|expiry| *expiry > now))
            .unwrap_or(false)
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(token);
        }
    }
}

/// Failed logins per client, for the growing waits.
#[derive(Clone, Default)]
pub struct Throttle(Arc<Mutex<HashMap<IpAddr, Failures>>>);

/// One client's failed logins.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Clients remembered at most (the quietest are forgotten first beyond it).
const MAX_CLIENTS: usize = 4096;
/// Failures are forgotten after this long without another one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// How long a client must wait after `failures` failed logins: the first three are free (a
/// typo), then 2, 4, 8 … seconds, at most 15 minutes.
pub fn wait_after(failures: u32) -> Duration {
    if failures < 3 {
        return Duration::ZERO;
    }
    let secs = 1u64 << (failures - 2).min(10);
    Duration::from_secs(secs.min(900))
}

impl Throttle {
    /// How much longer `client` must wait before trying again (None: may try now).
    pub fn must_wait(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.0.lock().ok()?;
        let f = map.get(&client)?;
        let until = f.last + wait_after(f.count);
        (until > now).then(|| until - now)
    }

    /// Records a failure; returns how many this client has now.
    pub fn fail(&self, client: IpAddr, now: Instant) -> u32 {
        let Ok(mut map) = self.0.lock() else {
            return 0;
        };
        map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        if map.len() >= MAX_CLIENTS && !map.contains_key(&client) {
            if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip) {
                map.remove(&oldest);
            }
        }
        let f = map.entry(client).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count += 1;
        f.last = now;
        f.count
    }

    /// A right password clears the client's record.
    pub fn clear(&self, client: IpAddr) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&client);
        }
    }
}

/// The SHA-256 (hex) of every live read-only token, mirrored from `read_tokens` so checking
/// one costs no database read.
#[derive(Clone, Default)]
pub struct ReadTokens(Arc<RwLock<HashSet<String>>>);

impl ReadTokens {
    /// Replaces the set (after a start, a new token or a revocation).
    pub fn replace(&self, hashes: impl IntoIterator<Item = String>) {
        if let Ok(mut set) = self.0.write() {
            *set = hashes.into_iter().collect();
        }
    }

    /// Whether `token` is a live read-only token.
    pub fn valid(&self, token: &str) -> bool {
        let digest = token_digest(token);
        self.0.read().is_ok_and(|set| set.contains(&digest))
    }
}

/// What is stored for a token: its SHA-256 in hex (tokens are 256 random bits, so a plain
/// hash is enough; nothing to slow down).
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    Some(bytes)
}

/// 32 random bytes from the kernel, as hex.
pub fn random_token() -> Option<String> {
    Some(
        random_bytes::<32>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Whether this request carries a live login session (always true without a password).
pub fn allowed(state: &AppState, req: &HttpRequest) -> bool {
    !state.password.is_set()
        || req
            .cookie(COOKIE)
            .is_some_and(|c| state.sessions.valid(c.value()))
}

/// Paths that a read-only token opens: the kiosk pages, what they poll, and `/metrics`.
pub fn token_may_read(path: &str) -> bool {
    let miner_logs = path
        .strip_prefix("/api/miners/")
        .and_then(|rest| rest.strip_suffix("/logs"))
        .is_some_and(|id| id.chars().all(|c| c.is_ascii_digit()));
    request::is_kiosk(path)
        || miner_logs
        || matches!(
            path,
            "/api/herd_data"
                | "/api/records"
                | "/api/events"
                | "/api/sparklines"
                | "/api/block_templates"
                | "/api/alerts"
                | "/metrics"
                | "/healthz.json"
        )
}

/// A read-only token from `Authorization: Bearer …` or `?token=…`.
fn presented_token(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| {
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned())
    })
}

/// Paths open to everyone whatever `protect` says: logging in, the stylesheets and scripts
/// the login page needs, and the liveness check (it tells nothing but ok / not ok).
fn always_open(path: &str) -> bool {
    path == "/login" || path == "/healthz" || path.starts_with("/assets/")
}

/// Whether the request needs the login under `web` (given that a password is set).
pub fn needs_login(method: &Method, path: &str, web: &WebConfig) -> bool {
    if always_open(path) {
        return false;
    }
    let reading = matches!(*method, Method::GET | Method::HEAD);
    if !reading || path.starts_with("/api/backups/") {
        return true;
    }
    web.protect == Protect::All
}

/// The gate, run by [`super::security::layer`] for every request: None lets it through, Some is the
/// answer instead (401 with a link to the login page).
pub async fn refusal(state: &AppState, req: &ServiceRequest) -> Option<HttpResponse> {
    if !state.password.is_set() || !needs_login(req.method(), req.path(), &state.config.web) {
        return None;
    }
    let http = req.request();
    if allowed(state, http) {
        return None;
    }
    if *req.method() == Method::GET && token_may_read(req.path()) {
        if let Some(t) = presented_token(http) {
            if state.read_tokens.valid(&t) {
                return None;
            }
        }
    }
    let (what, hint) = if *req.method() == Method::POST {
        ("Changing settings", "")
    } else {
        (
            "Reading this",
            " (kiosks and Prometheus: use a read-only token from Settings)",
        )
    };
    let body = layout(
        "Log in",
        html! {
            h1 { "Log in first" }
            p { (what) " needs the password set in " code { "[web] password" } "." (hint) }
            p { a href="/login" { "Log in" } }
        },
    );
    Some(
        HttpResponse::build(StatusCode::UNAUTHORIZED)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"shepherd\""))
            .body(body.into_string()),
    )
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
    login_form(StatusCode::OK, None, state.password.is_set())
}

/// `POST /login`: a right password sets the session cookie and goes to the settings; a
/// client with too many failures waits first (429, `Retry-After`).
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    if !state.password.is_set() {
        return Ok(login_form(StatusCode::OK, None, false));
    }
    let web_config = &state.config.web;
    let client = request::client_ip(&req, web_config).unwrap_or(IpAddr::from([0u8, 0, 0, 0]));
    if let Some(wait) = state.throttle.must_wait(client, Instant::now()) {
        let secs = wait.as_secs().max(1);
        let mut resp = login_form(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many wrong passwords from your address: try again in {secs} s."
            )),
            true,
        );
        if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    let (password, attempt) = (state.password.clone(), form.into_inner().password);
    let right = web::block(move || password.verify(&attempt)).await?;
    if !right {
        let count = state.throttle.fail(client, Instant::now());
        tracing::warn!(
            %client,
            failures = count,
            "failed login (wrong password); the next attempt from there must wait {} s",
            wait_after(count).as_secs()
        );
        return Ok(login_form(
            StatusCode::UNAUTHORIZED,
            Some("Wrong password."),
            true,
        ));
    }
    state.throttle.clear(client);
    let ttl = Duration::from_secs(web_config.session_days * 86_400);
    let Some(token) = state.sessions.start(ttl) else {
        return Err(
            ApiError::Internal("cannot read /dev/urandom to make a session token".into()).into(),
        );
    };
    tracing::info!(%client, "logged in");
    let cookie = Cookie::build(COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(request::over_https(&req, web_config))
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ))
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
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let h = hash_password("hunter2").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert_ne!(h, hash_password("hunter2").unwrap(), "salted");
        let (p, plain) = Password::from_config(&h).unwrap();
        assert!(!plain && p.is_set());
        assert!(p.verify("hunter2"));
        assert!(!p.verify("hunter3") && !p.verify(""));
    }

    #[test]
    fn a_plain_password_still_works_and_is_reported() {
        let (p, plain) = Password::from_config("s3cret pass").unwrap();
        assert!(plain);
        assert!(p.verify("s3cret pass") && !p.verify("s3cret"));
        let (none, _) = Password::from_config("").unwrap();
        assert!(!none.is_set() && !none.verify(""));
        let err = Password::from_config("$argon2id$broken").err().unwrap();
        assert!(err.contains("shepherd passwd"), "{err}");
    }

    #[test]
    fn sessions_come_go_and_expire() {
        let s = Sessions::default();
        let t = s.start(Duration::from_secs(60)).unwrap();
        assert_eq!(t.len(), 64);
        assert!(s.valid(&t));
        assert!(!s.valid("nope"));
        assert!(!s.valid_at(&t, Instant::now() + Duration::from_secs(61)));
        s.end(&t);
        assert!(!s.valid(&t));
    }

    #[test]
    fn waits_grow_after_three_failures_and_are_capped() {
        let waits: Vec<u64> = (0..8).map(|n| wait_after(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 2, 4, 8, 16, 32]);
        assert_eq!(wait_after(40).as_secs(), 900);
    }

    #[test]
    fn the_throttle_counts_per_client() {
        let t = Throttle::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.must_wait(a, now), None);
            t.fail(a, now);
        }
        assert_eq!(t.must_wait(a, now), Some(Duration::from_secs(2)));
        assert_eq!(t.must_wait(a, now + Duration::from_secs(2)), None);
        assert_eq!(t.must_wait(b, now), None, "another client is not held up");
        t.fail(a, now + Duration::from_secs(2));
        assert_eq!(
            t.must_wait(a, now + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
        t.clear(a);
        assert_eq!(t.must_wait(a, now), None);
        // A long quiet spell forgets a client.
        t.fail(b, now);
        assert_eq!(t.fail(b, now + FORGET_AFTER + Duration::from_secs(1)), 1);
    }

    #[test]
    fn tokens_are_checked_by_digest_and_open_only_reading_paths() {
        let r = ReadTokens::default();
        r.replace([token_digest("abc")]);
        assert!(r.valid("abc") && !r.valid("abd"));
        assert!(token_may_read("/kiosk/clock") && token_may_read("/metrics"));
        assert!(!token_may_read("/settings") && !token_may_read("/api/backups/1"));
        assert!(!token_may_read("/api/commands/1"));
    }

    #[test]
    fn what_needs_the_login() {
        let mut web = WebConfig::default();
        let (get, post) = (Method::GET, Method::POST);
        assert!(needs_login(&post, "/settings/pools", &web));
        assert!(needs_login(&get, "/api/backups/3", &web));
        assert!(!needs_login(&get, "/settings", &web));
        assert!(!needs_login(&post, "/login", &web));
        assert!(needs_login(&Method::DELETE, "/settings/pools/1", &web));
        assert!(!needs_login(&Method::HEAD, "/", &web));
        web.protect = Protect::All;
        assert!(needs_login(&get, "/", &web) && needs_login(&get, "/api/herd_data", &web));
        assert!(!needs_login(&get, "/login", &web) && !needs_login(&get, "/assets/app.css", &web));
        assert!(!needs_login(&get, "/healthz", &web));
    }
}
