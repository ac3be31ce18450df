//! `GET /api/events`: server-sent events. Pages subscribe once and get the herd document
//! whenever it changes, instead of polling; polling stays as the fallback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures_util::stream;
use tokio::sync::watch;

use super::AppState;

/// A comment line at least this often keeps proxies and browsers from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// One producer for every subscriber: each published herd document is serialized once and
/// the same frame handed to all streams, and the number of streams is capped
/// (`[web] max_event_streams`), so a room full of screens costs what one does.
pub struct Hub {
    tx: watch::Sender<Option<Arc<str>>>,
    streams: AtomicUsize,
    max: usize,
}

impl Hub {
    /// A hub serving at most `max` streams at once.
    pub fn new(max: usize) -> Self {
        Hub {
            tx: watch::channel(None).0,
            streams: AtomicUsize::new(0),
            max,
        }
    }

    /// A place for one more stream, or None when `max` are open.
    pub fn join(self: &Arc<Self>) -> Option<Seat> {
        self.streams
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(Seat {
            hub: self.clone(),
            rx: self.tx.subscribe(),
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }

    /// Hands `frame` to every stream.
    fn publish(&self, frame: String) {
        self.tx.send_replace(Some(Arc::from(frame)));
    }

    #[cfg(test)]
    fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// One open stream: its receiver and its place in the count (given back when dropped).
pub struct Seat {
    hub: Arc<Hub>,
    rx: watch::Receiver<Option<Arc<str>>>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.hub.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The producer: serializes each herd document the summarizer publishes (once per change,
/// see [`crate::herd::Publisher`]) into one frame for every stream. Runs until the process
/// ends.
pub async fn produce(state: Arc<AppState>) {
    let mut herd = state.herd.subscribe();
    // A document published before the server started is the first frame.
    herd.mark_changed();
    while herd.changed().await.is_ok() {
        let doc = herd.borrow_and_update().clone();
        let Some(doc) = doc else { continue };
        // Even with nobody listening (once per change is cheap): a new stream then starts
        // with the latest document at once.
        match serde_json::to_string(&*doc) {
            Ok(json) => state.events.publish(frame("herd", &json)),
            Err(e) => tracing::warn!("cannot serialize the herd document: {e}"),
        }
    }
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

/// State of one subscriber's stream.
struct Subscriber {
    seat: Seat,
    first: bool,
}

/// `GET /api/events`: 503 when `[web] max_event_streams` are open (pages then poll).
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let Some(mut seat) = state.events.join() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "30"))
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "503: {} live-update streams are open, the most allowed ([web] \
                 max_event_streams); this page keeps itself current by polling instead.",
                state.config.web.max_event_streams
            ));
    };
    // A herd already published is sent at once; otherwise the producer's next one comes.
    seat.rx.mark_changed();
    let sub = Subscriber { seat, first: true };
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
            match tokio::time::timeout(KEEPALIVE, sub.seat.rx.changed()).await {
                Err(_) => return Some((Ok(web::Bytes::from_static(b": keepalive\n\n")), sub)),
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {
                    let frame = sub.seat.rx.borrow_and_update().clone();
                    if let Some(frame) = frame {
                        return Some((Ok(web::Bytes::copy_from_slice(frame.as_bytes())), sub));
                    }
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        // Keeps the Compress middleware from buffering events.
        .insert_header(("Content-Encoding", "identity"))
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
    fn the_hub_caps_streams_and_gives_seats_back() {
        let hub = Arc::new(Hub::new(2));
        let a = hub.join().unwrap();
        let b = hub.join().unwrap();
        assert!(hub.join().is_none());
        assert_eq!((hub.open_streams(), hub.listeners()), (2, 2));
        drop(a);
        let mut c = hub.join().unwrap();
        drop(b);
        assert_eq!(hub.open_streams(), 1);
        hub.publish("x".into());
        assert!(c.rx.has_changed().unwrap());
        assert_eq!(c.rx.borrow_and_update().as_deref(), Some("x"));
    }
}
