//! What every request passes before a handler sees it: the `Host` check against DNS
//! rebinding, the login gate ([`super::auth`]), and the headers that keep pages out of other
//! sites' frames (`X-Frame-Options`, `Content-Security-Policy`).
//!
//! DNS rebinding: a page on `evil.example` re-points its own name at the Pi's address, and the
//! browser then treats the Shepherd as part of `evil.example` (same origin, so the form check
//! in [`super::csrf`] passes). The one thing the attacker cannot change is the `Host` header,
//! which still says `evil.example`; so a request whose `Host` (or `X-Forwarded-Host`) is not a
//! name this server is known by is refused with 421 before anything else happens.

use std::net::{IpAddr, SocketAddr};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};

use super::request::is_kiosk;
use super::AppState;
use crate::config::WebConfig;

/// The names a request's `Host` may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

impl AllowedHosts {
    /// `localhost`, `hostname` and `hostname.local` (when known), the bind address and the
    /// configured extra names.
    pub fn new(bind: SocketAddr, hostname: Option<&str>, extra: &[String]) -> Self {
        let mut names = vec!["localhost".to_owned(), bind.ip().to_string()];
        if let Some(h) = hostname.map(normalize).filter(|h| !h.is_empty()) {
            let short = h.split('.').next().unwrap_or_default().to_owned();
            names.push(format!("{short}.local"));
            names.push(short);
            names.push(h);
        }
        names.extend(extra.iter().map(|h| normalize(h)));
        names.sort();
        names.dedup();
        AllowedHosts {
            any: extra.iter().any(|h| h == "*"),
            names,
        }
    }

    /// For this machine: its hostname from the kernel.
    pub fn for_this_machine(bind: SocketAddr, web: &WebConfig) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
        Self::new(bind, hostname.as_deref().map(str::trim), &web.allowed_hosts)
    }

    /// Whether `authority` (a `Host` header value: `name[:port]`, `[v6]:port`) is ours. Any IP
    /// address is: a browser sends an IP as `Host` only when it was told that IP, so it
    /// reached us by address, not through somebody else's name (the attack this stops); this
    /// also keeps working when DHCP hands the Pi a new address.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(name) = host_of(authority) else {
            return false;
        };
        name.parse::<IpAddr>().is_ok() || self.names.iter().any(|n| *n == normalize(name))
    }
}

/// Lower case, without a trailing root dot.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of an authority, without port and IPv6 brackets; None when malformed.
fn host_of(authority: &str) -> Option<&str> {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        return (after.is_empty() || after.starts_with(':')).then_some(v6);
    }
    let host = match a.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return None,
        None => a,
    };
    (!host.is_empty() && !host.contains(['@', '/', ' '])).then_some(host)
}

/// The first name in the request's `Host` / `X-Forwarded-Host` headers that is not ours.
pub fn foreign_host<'a>(req: &'a HttpRequest, allowed: &AllowedHosts) -> Option<&'a str> {
    let h = req.headers();
    let host = h.get(header::HOST).into_iter();
    let forwarded = h.get_all("x-forwarded-host");
    host.chain(forwarded)
        .flat_map(|v| v.to_str().unwrap_or("\u{fffd}").split(','))
        .map(str::trim)
        .find(|v| !allowed.allows(v))
}

/// The Content-Security-Policy of every response: everything from this server only, no
/// inline scripts or styles, no frames; `frame_ancestors` replaces `'none'` for kiosks when
/// configured.
pub fn csp(frame_ancestors: &str) -> String {
    let ancestors = if frame_ancestors.trim().is_empty() {
        "'none'"
    } else {
        frame_ancestors.trim()
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors {ancestors}"
    )
}

/// Whether a JSON key names a secret (a pool password, a token).
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("pass") || k.contains("token") || k.contains("secret")
}

/// Replaces, at any depth, every string under a key that names a secret with `***` (an empty
/// one stays empty: it says "none", which is no secret).
pub fn mask_secrets(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                match item {
                    serde_json::Value::String(s) if secret_key(k) && !s.is_empty() => {
                        *s = "***".into()
                    }
                    _ => mask_secrets(item),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// Adds the frame and content headers to a response.
fn add_headers(path: &str, web: &WebConfig, headers: &mut header::HeaderMap) {
    let framable = is_kiosk(path) && !web.kiosk_frame_ancestors.trim().is_empty();
    // A kiosk view may always be framed by this server's own pages: the live thumbnails on
    // /kiosk. Same origin only, so no other site can frame it.
    let view = path.starts_with("/kiosk/");
    let ancestors = match (framable, view) {
        (true, true) => format!("'self' {}", web.kiosk_frame_ancestors.trim()),
        (true, false) => web.kiosk_frame_ancestors.trim().to_owned(),
        (false, true) => "'self'".to_owned(),
        (false, false) => String::new(),
    };
    let policy = csp(&ancestors);
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if framable {
        headers.remove(header::X_FRAME_OPTIONS);
    } else if view {
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
    } else {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Middleware around every route: Host check, then the login gate, then the headers.
pub async fn layer<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let web = &state.config.web;
    let path = req.path().to_owned();
    // `/healthz` tells nothing but ok / why not, so watchdogs may use any name for it.
    let foreign = (path != "/healthz")
        .then(|| foreign_host(req.request(), &state.allowed_hosts))
        .flatten();
    if let Some(host) = foreign {
        tracing::warn!(
            host,
            client = ?req.peer_addr(),
            "refused a request for a name this server is not known by"
        );
        let resp = HttpResponse::build(StatusCode::MISDIRECTED_REQUEST)
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "421: this Shepherd is not known as {host:?}. If that is a name you use to reach \
                 it (a reverse proxy, a DNS alias), add it to [web] allowed_hosts in config.toml \
                 and restart; otherwise a web page tried to reach it through its own name (DNS \
                 rebinding) and was stopped."
            ));
        let mut resp = req.into_response(resp).map_into_right_body();
        add_headers(&path, web, resp.headers_mut());
        return Ok(resp);
    }
    let mut resp = match super::auth::refusal(&state, &req).await {
        Some(refused) => req.into_response(refused).map_into_right_body(),
        None => next.call(req).await?.map_into_left_body(),
    };
    add_headers(&path, web, resp.headers_mut());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn hosts() -> AllowedHosts {
        AllowedHosts::new(
            "0.0.0.0:8080".parse().unwrap(),
            Some("Shepherd-Pi"),
            &["miners.example.com".into()],
        )
    }

    #[test]
    fn our_names_and_any_address_pass() {
        let h = hosts();
        for ok in [
            "localhost:8080",
            "LOCALHOST",
            "shepherd-pi:8080",
            "shepherd-pi.local:8080",
            "shepherd-pi.local.",
            "192.168.1.20:8080",
            "127.0.0.1",
            "[::1]:8080",
            "[fe80::1]",
            "miners.example.com",
            "miners.example.com:443",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
    }

    #[test]
    fn other_names_are_refused() {
        let h = hosts();
        for bad in [
            "evil.example:8080",
            "evil.example",
            "shepherd-pi.evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "",
            "[::1",
            "localhost:80a",
            "user@localhost",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn a_star_accepts_everything_and_fqdn_hostnames_add_the_short_name() {
        let any = AllowedHosts::new("127.0.0.1:1".parse().unwrap(), None, &["*".into()]);
        assert!(any.allows("evil.example"));
        let fq = AllowedHosts::new("127.0.0.1:1".parse().unwrap(), Some("pi.lan"), &[]);
        assert!(fq.allows("pi.lan") && fq.allows("pi") && fq.allows("pi.local"));
        assert!(!fq.allows("pi.lan.local"));
    }

    #[test]
    fn forwarded_hosts_are_checked_too() {
        let h = hosts();
        let req = TestRequest::get()
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("X-Forwarded-Host", "evil.example"))
            .to_http_request();
        assert_eq!(foreign_host(&req, &h), Some("evil.example"));
        let req = TestRequest::get()
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("X-Forwarded-Host", "miners.example.com"))
            .to_http_request();
        assert_eq!(foreign_host(&req, &h), None);
    }

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let mut v = serde_json::json!({
            "poolString": "public-pool.io", "poolPassword": "hunter2",
            "config": {"poolPassword": "x", "btcString": "bc1q"},
            "steps": [{"token": "t0k"}], "empty_pass": ""
        });
        mask_secrets(&mut v);
        assert_eq!(v["poolPassword"], "***");
        assert_eq!(v["config"]["poolPassword"], "***");
        assert_eq!(v["config"]["btcString"], "bc1q");
        assert_eq!(v["steps"][0]["token"], "***");
        assert_eq!(v["empty_pass"], "");
        assert_eq!(v["poolString"], "public-pool.io");
    }

    #[test]
    fn the_policy_forbids_frames_and_inline_code() {
        let p = csp("");
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("script-src 'self';") && !p.contains("unsafe-inline"));
        let k = csp("http://homeassistant.local:8123");
        assert!(k.ends_with("frame-ancestors http://homeassistant.local:8123"));
        assert!(is_kiosk("/kiosk/clock") && is_kiosk("/kiosk") && !is_kiosk("/kiosks"));
    }
}
