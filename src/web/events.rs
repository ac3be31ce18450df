//! `GET /api/events`: server-sent events. Pages subscribe once and get the herd document
//! whenever it changes, instead of polling; polling stays as the fallback.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures_util::stream;

use super::api::herd;
use super::AppState;

/// How often the herd is looked at for changes.
const TICK: Duration = Duration::from_secs(1);
/// A comment line at least this often keeps proxies and browsers from closing an idle stream.
const KEEPALIVE_TICKS: u32 = 15;

/// State of one subscriber's stream.
struct Subscriber {
    state: std::sync::Arc<AppState>,
    last: Option<String>,
    idle: u32,
    first: bool,
}

/// The part of the herd document that says whether anything changed (not the clock).
fn fingerprint(doc: &serde_json::Value) -> String {
    let mut d = doc.clone();
    if let Some(obj) = d.as_object_mut() {
        obj.remove("server_time");
    }
    d.to_string()
}

/// One SSE frame.
pub fn frame(event: &str, data: &str) -> String {
    let mut out = format!("event: {event}\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `GET /api/events`
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let sub = Subscriber {
        state: state.into_inner(),
        last: None,
        idle: 0,
        first: true,
    };
    let body = stream::unfold(sub, |mut sub| async move {
        if sub.first {
            sub.first = false;
            // Reconnect after 3 s if the server goes away (kiosks run for months).
            return Some((
                Ok::<_, actix_web::Error>(web::Bytes::from_static(b"retry: 3000\n\n")),
                sub,
            ));
        }
        loop {
            actix_rt::time::sleep(TICK).await;
            let st = sub.state.clone();
            let doc = web::block(move || herd(&st))
                .await
                .ok()
                .and_then(Result::ok);
            let doc = doc.and_then(|d| serde_json::to_value(d).ok());
            if let Some(doc) = doc {
                let fp = fingerprint(&doc);
                if sub.last.as_deref() != Some(fp.as_str()) {
                    sub.last = Some(fp);
                    sub.idle = 0;
                    return Some((Ok(web::Bytes::from(frame("herd", &doc.to_string()))), sub));
                }
            }
            sub.idle += 1;
            if sub.idle >= KEEPALIVE_TICKS {
                sub.idle = 0;
                return Some((Ok(web::Bytes::from_static(b": keepalive\n\n")), sub));
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_lines_and_end_with_a_blank_line() {
        assert_eq!(
            frame("herd", "{\"a\":1}"),
            "event: herd\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(frame("x", "a\nb"), "event: x\ndata: a\ndata: b\n\n");
    }

    #[test]
    fn the_clock_alone_is_no_change() {
        let a = serde_json::json!({"server_time": 1, "miners": [1]});
        let b = serde_json::json!({"server_time": 2, "miners": [1]});
        let c = serde_json::json!({"server_time": 2, "miners": [2]});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&b), fingerprint(&c));
    }
}
