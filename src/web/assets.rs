//! Static files (CSS, JS, icons) compiled into the binary: kiosks keep working offline and
//! the program runs from any directory with nothing beside it.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

/// Everything under `assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
pub struct Assets;

/// How long a browser may keep an asset. Pages link assets as `?v=<version>`
/// ([`super::frame::asset`]), so a versioned URL never changes content and is kept for good;
/// a bare URL is revalidated hourly.
pub fn cache_control(query: &str) -> &'static str {
    if query.split('&').any(|kv| kv.starts_with("v=")) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    }
}

/// `GET /assets/{path}`
pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    match Assets::get(&path) {
        Some(file) => HttpResponse::Ok()
            .content_type(file.metadata.mimetype())
            .insert_header((header::CACHE_CONTROL, cache_control(req.query_string())))
            .body(file.data.into_owned()),
        None => super::pages::not_found_response(&req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_urls_are_immutable() {
        assert!(cache_control("v=1.2.3").contains("immutable"));
        assert!(cache_control("token=x&v=1").contains("immutable"));
        assert!(!cache_control("").contains("immutable"));
        assert!(!cache_control("nv=1").contains("immutable"));
    }
}
