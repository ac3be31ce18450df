//! Cross-site request forgery protection for the HTML forms: a same-origin check.
//!
//! Every state-changing form POST calls [`check`]. It accepts the request only when its
//! `Origin` header (or, where a browser leaves that out, its `Referer`) names the host the
//! request was sent to: the `Host` header, or `X-Forwarded-Host` behind a reverse proxy.
//! Browsers send `Origin` with every form POST and a page on another site can forge neither
//! header, so a link or hidden form elsewhere cannot add or ignore devices. A request with
//! neither header is refused; scripts add one (`curl -H "Origin: http://pi:8080" …`).
//!
//! We chose this over a token in a hidden field: nothing to store, nothing that expires when
//! the process restarts, and a kiosk left open for months keeps working.

use actix_web::http::header;
use actix_web::HttpRequest;

use super::error::ApiError;

/// Refuses (403, with the reason) a request that did not come from one of our own pages.
pub fn check(req: &HttpRequest) -> Result<(), actix_web::Error> {
    let h = req.headers();
    let text = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let source = text(header::ORIGIN)
        .filter(|o| *o != "null")
        .or_else(|| text(header::REFERER));
    let hosts: Vec<&str> = [
        text(header::HOST),
        h.get("x-forwarded-host").and_then(|v| v.to_str().ok()),
    ]
    .into_iter()
    .flatten()
    .flat_map(|v| v.split(','))
    .map(str::trim)
    .collect();
    match source {
        Some(src) if same_origin(src, &hosts) => Ok(()),
        Some(src) => Err(ApiError::Forbidden(format!(
            "refused: this form was sent from {src}, not from this Shepherd's own page. \
             Open the page from this server and send it again."
        ))
        .into()),
        None => Err(ApiError::Forbidden(
            "refused: the request has no Origin or Referer header, so it cannot be told apart \
             from a forged one. Send the form from this Shepherd's page (scripts: add an \
             Origin header naming this server)."
                .into(),
        )
        .into()),
    }
}

/// Whether the URL `source` (an Origin or Referer) points at one of `hosts` (`host[:port]`).
pub fn same_origin(source: &str, hosts: &[&str]) -> bool {
    let Some((scheme, rest)) = source.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |a: &str| {
        a.strip_suffix(default_port)
            .unwrap_or(a)
            .to_ascii_lowercase()
    };
    let wanted = strip(authority);
    !wanted.is_empty() && hosts.iter().any(|h| strip(h) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn origin_must_name_the_host() {
        assert!(same_origin("http://pi.local:8080", &["pi.local:8080"]));
        assert!(same_origin(
            "http://PI.local:8080/onboarding?x=1",
            &["pi.local:8080"]
        ));
        assert!(same_origin("http://192.168.1.5", &["192.168.1.5:80"]));
        assert!(same_origin(
            "https://shepherd.example",
            &["shepherd.example"]
        ));
        assert!(!same_origin("http://evil.example", &["pi.local:8080"]));
        assert!(!same_origin("http://pi.local:8081", &["pi.local:8080"]));
        assert!(!same_origin(
            "http://pi.local:8080.evil.example",
            &["pi.local:8080"]
        ));
        assert!(!same_origin(
            "http://pi.local:8080@evil.example/",
            &["pi.local:8080"]
        ));
        assert!(!same_origin("pi.local:8080", &["pi.local:8080"]));
        assert!(!same_origin("file:///etc", &[""]));
    }

    #[test]
    fn requests_are_checked_by_header() {
        let ok = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("Origin", "http://127.0.0.1:8080"))
            .to_http_request();
        assert!(check(&ok).is_ok());
        let referer_only = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("Referer", "http://127.0.0.1:8080/onboarding"))
            .to_http_request();
        assert!(check(&referer_only).is_ok());
        let proxied = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("X-Forwarded-Host", "miners.example"))
            .insert_header(("Origin", "https://miners.example"))
            .to_http_request();
        assert!(check(&proxied).is_ok());
        let forged = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("Origin", "http://evil.example"))
            .to_http_request();
        let err = check(&forged).unwrap_err();
        assert_eq!(err.as_response_error().status_code(), 403);
        let bare = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:8080"))
            .to_http_request();
        assert!(check(&bare).unwrap_err().to_string().contains("Origin"));
    }
}
