//! Static files (CSS, JS, icons) compiled into the binary: kiosks keep working offline and
//! the program runs from any directory with nothing beside it.

use actix_web::{http::header, web, HttpResponse};
use rust_embed::RustEmbed;

/// Everything under `assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
pub struct Assets;

/// `GET /assets/{path}`
pub async fn serve(path: web::Path<String>) -> HttpResponse {
    match Assets::get(&path) {
        Some(file) => HttpResponse::Ok()
            .content_type(file.metadata.mimetype())
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(file.data.into_owned()),
        None => HttpResponse::NotFound().body("no such asset"),
    }
}
