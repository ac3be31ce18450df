//! What a request says about where it comes from: the client's address and whether it came
//! over HTTPS (both only as far as a trusted reverse proxy vouches for them), and whether it is
//! for a kiosk page. Used by the security layer and the login gate alike.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::WebConfig;

/// The address of the client: the peer, or, when the peer is a trusted proxy, the last address
/// in `X-Forwarded-For` that the proxy added.
pub fn client_ip(req: &HttpRequest, web: &WebConfig) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !web.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

/// Whether the browser reached us over HTTPS. We serve plain HTTP ourselves, so only a
/// trusted reverse proxy can say so (`X-Forwarded-Proto: https`); anyone else's header is
/// ignored.
pub fn over_https(req: &HttpRequest, web: &WebConfig) -> bool {
    let from_proxy = req
        .peer_addr()
        .is_some_and(|p| web.trusted_proxies.contains(&p.ip()));
    from_proxy
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Whether `path` is a kiosk page (the only pages that may be framed, when configured).
pub fn is_kiosk(path: &str) -> bool {
    path == "/kiosk" || path.starts_with("/kiosk/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn proxies_are_believed_only_when_trusted() {
        let mut web = WebConfig::default();
        let req = |peer: &str| {
            TestRequest::get()
                .peer_addr(peer.parse().unwrap())
                .insert_header(("X-Forwarded-Proto", "https"))
                .insert_header(("X-Forwarded-For", "203.0.113.9, 10.0.0.7"))
                .to_http_request()
        };
        let r = req("10.0.0.2:5000");
        assert!(!over_https(&r, &web));
        assert_eq!(client_ip(&r, &web), Some("10.0.0.2".parse().unwrap()));
        web.trusted_proxies = vec!["10.0.0.2".parse().unwrap()];
        assert!(over_https(&r, &web));
        assert_eq!(client_ip(&r, &web), Some("10.0.0.7".parse().unwrap()));
    }
}
