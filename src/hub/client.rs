//! The hub's subscriber: one MQTT connection to the central broker with a persistent session
//! (`clean_session = false` under a fixed client id, so QoS 1 events that arrive while the
//! hub is restarting wait on the broker), and a batching thread that hands what arrived to a
//! sink (in `shepherd run`, one write transaction on the DbActor per batch).
//!
//! rumqttc acknowledges a QoS 1 message when it is read, before the batch is written: a hub
//! killed in between (at most [`BATCH_WAIT`] of messages) loses those.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::{parse, Incoming, Skip};
use crate::config::MqttConfig;

/// How long the batching thread gathers messages before handing them on.
pub const BATCH_WAIT: Duration = Duration::from_millis(250);

/// Largest batch handed on at once.
const BATCH_MAX: usize = 2000;

/// Messages from other sites, parsed: `(site, message)`.
pub type Batch = Vec<(String, Incoming)>;

/// Counters for the bench and the log.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Messages taken.
    pub received: AtomicU64,
    /// Messages skipped (not of the schema, newer schema, malformed).
    pub skipped: AtomicU64,
    /// Batches handed to the sink.
    pub batches: AtomicU64,
}

/// The running subscriber; stops when dropped.
pub struct HubClient {
    client: Client,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Its counters.
    pub stats: Arc<HubStats>,
}

/// The topic filters of every site under `prefix`.
pub fn filters(prefix: &str) -> Vec<String> {
    [
        "+/status",
        "+/site",
        "+/herd/state",
        "+/miners/+/state",
        "+/events/+",
    ]
    .iter()
    .map(|f| format!("{prefix}/{f}"))
    .collect()
}

impl HubClient {
    /// Connects (in the background, retried every 5 s) as `shepherd-hub-<own_site>` and hands
    /// batches to `sink` on a thread of its own; `tick` runs on that thread about every
    /// second (liveness stamps, pruning). Messages of `own_site` are skipped: the local
    /// miners are shown live already.
    pub fn start(
        c: &MqttConfig,
        own_site: &str,
        mut sink: impl FnMut(Batch) + Send + 'static,
        mut tick: impl FnMut() + Send + 'static,
    ) -> Result<Self, String> {
        let prefix = c.topic_prefix.trim_end_matches('/').to_owned();
        let mut opts = MqttOptions::new(format!("shepherd-hub-{own_site}"), c.host.clone(), c.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(false);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if !c.username.is_empty() {
            opts.set_credentials(c.username.clone(), c.password.clone());
        }
        let (client, mut connection) = Client::new(opts, 100);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(HubStats::default());
        let (tx, rx) = mpsc::sync_channel::<(String, Incoming)>(BATCH_MAX * 8);
        let (sub, s, st) = (client.clone(), stop.clone(), stats.clone());
        let own = own_site.to_owned();
        let broker = format!("{}:{}", c.host, c.port);
        let reader = std::thread::Builder::new()
            .name("hub-mqtt".into())
            .spawn(move || {
                let mut was_down = false;
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            tracing::info!(
                                "hub: connected to {broker} (session kept: {})",
                                ack.session_present
                            );
                            was_down = false;
                            // Again on every connect: a broker without persistence forgot them.
                            for f in filters(&prefix) {
                                if let Err(e) = sub.try_subscribe(f, QoS::AtLeastOnce) {
                                    tracing::warn!("hub: cannot subscribe: {e}");
                                }
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            match parse(&prefix, &p.topic, &p.payload) {
                                Ok((site, _)) if site == own => {}
                                Ok(m) => {
                                    st.received.fetch_add(1, Ordering::Relaxed);
                                    if tx.send(m).is_err() {
                                        break;
                                    }
                                }
                                Err(skip) => {
                                    st.skipped.fetch_add(1, Ordering::Relaxed);
                                    if !matches!(skip, Skip::NotOurs) {
                                        tracing::debug!("hub: {} skipped: {skip:?}", p.topic);
                                    }
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if s.load(Ordering::SeqCst) {
                                break;
                            }
                            if !was_down {
                                tracing::warn!("hub: {broker}: {e}; retrying every 5 s");
                                was_down = true;
                            }
                            std::thread::sleep(Duration::from_secs(5));
                        }
                    }
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the hub's MQTT thread: {e}"))?;
        let (s, st) = (stop.clone(), stats.clone());
        let writer = std::thread::Builder::new()
            .name("hub-batch".into())
            .spawn(move || {
                let mut batch: Batch = Vec::new();
                let mut last_tick = Instant::now();
                loop {
                    let deadline = Instant::now() + BATCH_WAIT;
                    while batch.len() < BATCH_MAX {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(m) => batch.push(m),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => {
                                if !batch.is_empty() {
                                    sink(std::mem::take(&mut batch));
                                }
                                return;
                            }
                        }
                    }
                    if !batch.is_empty() {
                        st.batches.fetch_add(1, Ordering::Relaxed);
                        sink(std::mem::take(&mut batch));
                    }
                    if last_tick.elapsed() >= Duration::from_secs(1) {
                        last_tick = Instant::now();
                        tick();
                    }
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start the hub's batching thread: {e}"))?;
        Ok(Self {
            client,
            stop,
            threads: vec![reader, writer],
            stats,
        })
    }

    /// Disconnects (the broker keeps the session) and waits for the threads.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HubClient {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_parses_as_a_topic_of_the_schema() {
        let f = filters("shepherd");
        assert_eq!(f[0], "shepherd/+/status");
        // Each filter, with its wildcards filled in, is a topic `parse` knows.
        for (filter, payload) in f.iter().zip([
            &b"online"[..],
            br#"{"schema":1}"#,
            br#"{"schema":1}"#,
            br#"{"schema":1,"name":"x"}"#,
            br#"{"schema":1,"id":1,"at":2}"#,
        ]) {
            let topic = filter.replacen('+', "barn", 1).replacen(
                '+',
                if filter.ends_with("events/+") {
                    "block"
                } else {
                    "3"
                },
                1,
            );
            assert!(parse("shepherd", &topic, payload).is_ok(), "{topic}");
        }
    }
}
