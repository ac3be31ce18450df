//! Several sites in one view: every Shepherd publishes under `<topic_prefix>/<site>/…` on
//! MQTT (see [`crate::mqtt`] and `docs/mqtt-schema.md`), site brokers bridge to a central one,
//! and a Shepherd run with `--hub` subscribes to `<topic_prefix>/+/…` and keeps what arrives
//! in its own tables (`hub_*`, never `miners`: remote miners are read-only and no actor
//! starts for them).
//!
//! The messages themselves are pure data in [`crate::model::site`] (re-exported here);
//! [`client`] is the subscriber thread; the SQL is in [`crate::db::hub`].

pub mod client;

use std::time::{Duration, Instant};

use actix::Addr;

pub use crate::model::site::*;

use crate::clock::now_ms;
use crate::config::Config;
use crate::db::{DbActor, Write};

/// How often the hub stamps that it is still listening (gaps in history are measured
/// against this).
const ALIVE_EVERY: Duration = Duration::from_secs(30);

/// Starts the subscriber of `shepherd run --hub`: each batch is one write transaction on the
/// DbActor; the run is recorded (for gaps) and old remote history pruned hourly.
pub fn start(config: &Config, db: Addr<DbActor>) -> Result<client::HubClient, String> {
    let own = config.site.effective_name();
    tracing::info!(
        "hub: showing every site under {}/+ on {}:{} (this site, {own}, is shown live)",
        config.mqtt.topic_prefix,
        config.mqtt.host,
        config.mqtt.port
    );
    let keep_ms =
        i64::try_from(config.hub.history_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    let started = now_ms();
    db.do_send(Write::new(move |c| {
        if let Err(e) = crate::db::hub::start_run(c, started) {
            tracing::warn!("hub: cannot record the start: {e}");
        }
        Ok(())
    }));
    let sink_db = db.clone();
    let sink = move |batch: client::Batch| {
        sink_db.do_send(Write::new(move |c| {
            let now = now_ms();
            let result = c.transaction().and_then(|tx| {
                for (site, msg) in &batch {
                    crate::db::hub::apply(&tx, site, msg, now)?;
                }
                crate::db::hub::alive(&tx, now)?;
                tx.commit()
            });
            if let Err(e) = result {
                tracing::warn!("hub: {} message(s) not stored: {e}", batch.len());
            }
            Ok(())
        }));
    };
    let (mut last_alive, mut last_prune) = (Instant::now(), None::<Instant>);
    let tick = move || {
        if last_alive.elapsed() >= ALIVE_EVERY {
            last_alive = Instant::now();
            db.do_send(Write::new(|c| {
                let _ = crate::db::hub::alive(c, now_ms());
                Ok(())
            }));
        }
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(Instant::now());
            db.do_send(Write::new(move |c| {
                if let Err(e) = crate::db::hub::prune(c, now_ms().saturating_sub(keep_ms)) {
                    tracing::warn!("hub: pruning remote history failed: {e}");
                }
                Ok(())
            }));
        }
    };
    client::HubClient::start(&config.mqtt, &own, sink, tick)
}
