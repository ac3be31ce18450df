//! The frame every page shares: head, navigation, footer, asset URLs, and the error page.
//! Every page module imports it; it imports no page, so no page needs another for its frame.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

/// Asset URL with the version, so a kiosk that runs for months picks up new files after an
/// upgrade.
pub fn asset(name: &str) -> String {
    format!("/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// The frame every page shares.
pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · The Shepherd" }
                link rel="icon" href=(asset("favicon.svg"));
                link rel="stylesheet" href=(asset("app.css"));
                link rel="stylesheet" href=(asset("celebrate.css"));
                // Loaded before the body so a saved theme applies without a flash.
                script src=(asset("theme.js")) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.topbar {
                    a.brand href="/" { img src=(asset("favicon.svg") ) alt="" width="28" height="28"; span.brand-text { "The Shepherd" } }
                    nav {
                        a href="/" { "Dashboard" }
                        a href="/incidents" { "Incidents" }
                        a href="/ports" { "Ports" }
                        a href="/firmware" { "Firmware" }
                        a href="/kiosk" { "Kiosk" }
                        a href="/settings" { "Settings" }
                        a href="/fleet" { "Fleet" }
                        a href="/onboarding" { "Add devices" }
                    }
                    button.secondary #theme-toggle type="button" title="Switch between light and dark" { "◐" span.label { " Theme" } }
                }
                main #main tabindex="-1" { (body) }
                footer { "The Shepherd " (env!("CARGO_PKG_VERSION")) }
                script src=(asset("celebrate.js")) {}
            }
        }
    }
}

/// An HTML page with a status (404 unknown miner, 400 bad range).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = layout(
        title,
        html! { h1 { (title) } p.error { (message) } p { a href="/" { "Back to the dashboard" } } },
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body.into_string())
}
