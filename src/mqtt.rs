//! MQTT for Home Assistant (and anything else on the broker): every miner's state and the herd
//! totals as JSON, Home Assistant discovery so each miner appears as a device with sensors,
//! and a retained availability topic with a last will.
//!
//! Topics, with the default prefixes, under this site's name (`[site] name`, default the
//! hostname) so several Shepherds can share a broker; the documents are versioned
//! (`"schema": 1`, described in `docs/mqtt-schema.md`):
//! - `shepherd/<site>/status` — `online` / `offline`, retained; the broker publishes `offline`
//!   (the last will) if the Shepherd vanishes without saying goodbye;
//! - `shepherd/<site>/site` — who this is (version, `[site] url`), retained;
//! - `shepherd/<site>/miners/<id>/state` and `shepherd/<site>/herd/state` — JSON, retained;
//! - `shepherd/<site>/events/{record,block,incident}` — news, QoS 1, not retained;
//! - `homeassistant/sensor/<node>/<object>/config` — discovery, retained, one per sensor, with a
//!   device block per miner (`<node>` is `shepherd_miner_<id>`, or `shepherd_herd`).
//!
//! Everything is published with QoS 1.
//!
//! rumqttc's blocking client runs its connection (and reconnects) on a thread of its own; the
//! publish calls only queue, and give up instead of waiting when the queue is full, so a dead
//! broker never holds up the caller.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::{Client, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

use crate::clock::now_ms;
use crate::config::{MqttConfig, SiteConfig};
use crate::herd::{HerdTotals, MinerView};
use crate::hub::SCHEMA;

/// Requests the client may queue while the broker is slow or away.
const QUEUE: usize = 1000;

/// A handle to publish on the broker (cheap to clone).
#[derive(Clone)]
pub struct MqttLink {
    client: Client,
}

impl MqttLink {
    /// Queues a publish (QoS 1); fails at once, without waiting, if the queue is full.
    pub fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), String> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|e| format!("MQTT publish to {topic}: {e}"))
    }
}

/// One sensor of a device.
struct Sensor {
    object: &'static str,
    name: &'static str,
    field: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    state_class: Option<&'static str>,
    icon: &'static str,
}

const fn sensor(
    object: &'static str,
    name: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    state_class: Option<&'static str>,
    icon: &'static str,
) -> Sensor {
    Sensor {
        object,
        name,
        field: object,
        unit,
        device_class,
        state_class,
        icon,
    }
}

const MINER_SENSORS: [Sensor; 7] = [
    sensor(
        "hashrate",
        "Hashrate",
        Some("kH/s"),
        None,
        Some("measurement"),
        "mdi:pickaxe",
    ),
    sensor(
        "temperature",
        "Temperature",
        Some("°C"),
        Some("temperature"),
        Some("measurement"),
        "mdi:thermometer",
    ),
    sensor(
        "shares_accepted",
        "Shares accepted",
        None,
        None,
        Some("total_increasing"),
        "mdi:check",
    ),
    sensor(
        "shares_rejected",
        "Shares rejected",
        None,
        None,
        Some("total_increasing"),
        "mdi:close",
    ),
    sensor(
        "best_difficulty",
        "Best difficulty",
        None,
        None,
        Some("measurement"),
        "mdi:trophy",
    ),
    sensor(
        "blocks_found",
        "Blocks found",
        None,
        None,
        Some("total_increasing"),
        "mdi:bitcoin",
    ),
    sensor("status", "Status", None, None, None, "mdi:lan-connect"),
];

const HERD_SENSORS: [Sensor; 6] = [
    sensor(
        "hashrate",
        "Herd hashrate",
        Some("kH/s"),
        None,
        Some("measurement"),
        "mdi:pickaxe",
    ),
    sensor(
        "online",
        "Miners online",
        None,
        None,
        Some("measurement"),
        "mdi:lan-connect",
    ),
    sensor(
        "miners",
        "Miners",
        None,
        None,
        Some("measurement"),
        "mdi:sheep",
    ),
    sensor(
        "shares",
        "Shares",
        None,
        None,
        Some("total_increasing"),
        "mdi:check",
    ),
    sensor(
        "best_difficulty",
        "Best difficulty",
        None,
        None,
        Some("measurement"),
        "mdi:trophy",
    ),
    sensor(
        "blocks_found",
        "Blocks found",
        None,
        None,
        Some("total_increasing"),
        "mdi:bitcoin",
    ),
];

/// Topic names under the configured prefixes.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `[mqtt] topic_prefix`.
    pub prefix: String,
    /// `[mqtt] discovery_prefix`.
    pub discovery: String,
    /// This site's topic level.
    pub site: String,
}

impl Topics {
    /// From `[mqtt]` and the site's name (one topic level, see [`crate::hub::site_segment`]).
    pub fn from_config(c: &MqttConfig, site: &str) -> Self {
        Self {
            prefix: c.topic_prefix.trim_end_matches('/').to_owned(),
            discovery: c.discovery_prefix.trim_end_matches('/').to_owned(),
            site: site.to_owned(),
        }
    }

    /// Retained availability topic.
    pub fn status(&self) -> String {
        format!("{}/{}/status", self.prefix, self.site)
    }

    /// Retained "who is this site" topic.
    pub fn site_info(&self) -> String {
        format!("{}/{}/site", self.prefix, self.site)
    }

    /// A miner's state topic.
    pub fn miner_state(&self, id: i64) -> String {
        format!("{}/{}/miners/{id}/state", self.prefix, self.site)
    }

    /// The herd's state topic.
    pub fn herd_state(&self) -> String {
        format!("{}/{}/herd/state", self.prefix, self.site)
    }

    /// An event's topic (`record`, `block`, `incident`).
    pub fn event(&self, kind: &str) -> String {
        format!("{}/{}/events/{kind}", self.prefix, self.site)
    }

    fn config(&self, node: &str, object: &str) -> String {
        format!("{}/sensor/{node}/{object}/config", self.discovery)
    }
}

fn discovery_payload(
    topics: &Topics,
    node: &str,
    s: &Sensor,
    state_topic: &str,
    device: &Value,
) -> Value {
    let mut v = json!({
        "name": s.name,
        "unique_id": format!("{node}_{}", s.object),
        "state_topic": state_topic,
        "value_template": format!("{{{{ value_json.{} }}}}", s.field),
        "availability_topic": topics.status(),
        "icon": s.icon,
        "device": device,
    });
    for (key, value) in [
        ("unit_of_measurement", s.unit),
        ("device_class", s.device_class),
        ("state_class", s.state_class),
    ] {
        if let Some(x) = value {
            v[key] = json!(x);
        }
    }
    v
}

/// Home Assistant discovery messages (topic, payload) for one miner.
pub fn miner_discovery(topics: &Topics, m: &MinerView) -> Vec<(String, Value)> {
    let node = format!("shepherd_miner_{}", m.id);
    let mut device = json!({
        "identifiers": [node],
        "name": m.name,
        "manufacturer": "NerdMiner",
        "model": "NerdMiner (ESP32)",
        "via_device": "shepherd_herd",
    });
    if let Some(fw) = &m.firmware {
        device["sw_version"] = json!(fw);
    }
    let state = topics.miner_state(m.id);
    MINER_SENSORS
        .iter()
        .map(|s| {
            (
                topics.config(&node, s.object),
                discovery_payload(topics, &node, s, &state, &device),
            )
        })
        .collect()
}

/// Discovery topics of one miner (to remove it).
pub fn miner_config_topics(topics: &Topics, id: i64) -> Vec<String> {
    let node = format!("shepherd_miner_{id}");
    MINER_SENSORS
        .iter()
        .map(|s| topics.config(&node, s.object))
        .collect()
}

/// Home Assistant discovery messages for the herd totals (one "The Shepherd" device).
pub fn herd_discovery(topics: &Topics) -> Vec<(String, Value)> {
    let node = "shepherd_herd";
    let device = json!({
        "identifiers": [node],
        "name": "The Shepherd",
        "manufacturer": "The Shepherd",
        "model": "NerdMiner herd",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let state = topics.herd_state();
    HERD_SENSORS
        .iter()
        .map(|s| {
            (
                topics.config(node, s.object),
                discovery_payload(topics, node, s, &state, &device),
            )
        })
        .collect()
}

/// A miner's state document (schema 1) at `at` (Unix ms).
pub fn miner_state(site: &str, m: &MinerView, at: i64) -> Value {
    let status = serde_json::to_value(m.status).unwrap_or(Value::Null);
    json!({
        "schema": SCHEMA,
        "site": site,
        "at": at,
        "id": m.id,
        "name": m.name,
        "status": status,
        "hashrate": m.hashrate_khs,
        "hashrate_avg_24h": m.hashrate_avg_24h,
        "temperature": m.temperature,
        "shares_accepted": m.accepted,
        "shares_rejected": m.rejected,
        "best_difficulty": m.best_diff,
        "blocks_found": m.blocks_found,
        "uptime_secs": m.uptime_secs,
        "restarts": m.restarts,
        "last_seen": m.last_seen,
    })
}

/// The herd's state document (schema 1) at `at` (Unix ms).
pub fn herd_state(site: &str, t: &HerdTotals, at: i64) -> Value {
    json!({
        "schema": SCHEMA,
        "site": site,
        "at": at,
        "hashrate": t.hashrate_khs,
        "online": t.online,
        "miners": t.miners,
        "shares": t.shares,
        "best_difficulty": t.best_diff,
        "blocks_found": t.blocks_found,
    })
}

/// The site document (schema 1): who publishes here and where its own pages are.
pub fn site_info(site: &str, url: &str, at: i64) -> Value {
    json!({
        "schema": SCHEMA,
        "site": site,
        "at": at,
        "version": env!("CARGO_PKG_VERSION"),
        "url": (!url.is_empty()).then_some(url),
    })
}

/// An event document (schema 1): the row's fields plus `schema`, `site` and `kind`.
pub fn event_doc(site: &str, kind: &str, mut fields: Value) -> Value {
    if let Value::Object(map) = &mut fields {
        map.insert("schema".into(), json!(SCHEMA));
        map.insert("site".into(), json!(site));
        map.insert("kind".into(), json!(kind));
    }
    fields
}

/// The broker connection, its thread, and what has been announced since it last connected.
pub struct MqttBridge {
    link: MqttLink,
    topics: Topics,
    /// Set by the connection thread on every (re)connect: discovery must be sent again
    /// (a broker restarted without persistence forgets retained messages).
    fresh: Arc<AtomicBool>,
    announced: Mutex<HashSet<i64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MqttBridge {
    /// Starts connecting (in the background; an unreachable broker is retried for ever).
    pub fn start(c: &MqttConfig, site: &SiteConfig) -> Self {
        let topics = Topics::from_config(c, &site.effective_name());
        let id = format!("shepherd-{}-{}", topics.site, std::process::id());
        let mut opts = MqttOptions::new(id, c.host.clone(), c.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_last_will(LastWill::new(
            topics.status(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if !c.username.is_empty() {
            opts.set_credentials(c.username.clone(), c.password.clone());
        }
        let (client, mut connection) = Client::new(opts, QUEUE);
        let link = MqttLink { client };
        let fresh = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, f, s, status) = (link.clone(), fresh.clone(), stop.clone(), topics.status());
        let (info_topic, site_name, url) =
            (topics.site_info(), topics.site.clone(), site.url.clone());
        let broker = format!("{}:{}", c.host, c.port);
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || {
                let mut was_down = false;
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            tracing::info!("MQTT: connected to {broker}");
                            was_down = false;
                            if let Err(e) = l.publish(&status, b"online".to_vec(), true) {
                                tracing::warn!("{e}");
                            }
                            let info = site_info(&site_name, &url, now_ms()).to_string();
                            if let Err(e) = l.publish(&info_topic, info.into_bytes(), true) {
                                tracing::warn!("{e}");
                            }
                            f.store(true, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if s.load(Ordering::SeqCst) {
                                break;
                            }
                            if !was_down {
                                tracing::warn!("MQTT: {broker}: {e}; retrying every 5 s");
                                was_down = true;
                            }
                            std::thread::sleep(Duration::from_secs(5));
                            if s.load(Ordering::SeqCst) {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| tracing::error!("cannot start the MQTT thread: {e}"))
            .ok();
        Self {
            link,
            topics,
            fresh,
            announced: Mutex::new(HashSet::new()),
            stop,
            thread,
        }
    }

    /// A publishing handle (for the MQTT notifier).
    pub fn link(&self) -> MqttLink {
        self.link.clone()
    }

    /// Publishes discovery (for miners not yet announced on this connection) and every state.
    pub fn publish_herd(&self, miners: &[MinerView], totals: &HerdTotals) {
        let Ok(mut announced) = self.announced.lock() else {
            return;
        };
        let (site, now) = (self.topics.site.as_str(), now_ms());
        let reannounce = self.fresh.swap(false, Ordering::SeqCst);
        if reannounce {
            announced.clear();
            for (topic, payload) in herd_discovery(&self.topics) {
                self.send(&topic, &payload);
            }
        }
        for m in miners {
            if announced.insert(m.id) {
                for (topic, payload) in miner_discovery(&self.topics, m) {
                    self.send(&topic, &payload);
                }
            }
            self.send(&self.topics.miner_state(m.id), &miner_state(site, m, now));
        }
        // A miner removed from the Shepherd: an empty retained config removes it from Home
        // Assistant, and an empty retained state clears the broker's copy.
        let gone: Vec<i64> = announced
            .iter()
            .copied()
            .filter(|id| !miners.iter().any(|m| m.id == *id))
            .collect();
        for id in gone {
            announced.remove(&id);
            for topic in miner_config_topics(&self.topics, id) {
                self.send_raw(&topic, Vec::new());
            }
            self.send_raw(&self.topics.miner_state(id), Vec::new());
        }
        self.send(&self.topics.herd_state(), &herd_state(site, totals, now));
    }

    /// Publishes events (kind, fields) — QoS 1, not retained: news, not state. Returns how
    /// many were queued; the rest failed on a full queue (the broker is away too long).
    pub fn publish_events(&self, events: &[(&str, i64, Value)]) -> usize {
        let mut queued = 0;
        for (kind, _, fields) in events {
            let doc = event_doc(&self.topics.site, kind, fields.clone());
            match self.link.publish(
                &self.topics.event(kind),
                doc.to_string().into_bytes(),
                false,
            ) {
                Ok(()) => queued += 1,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        queued
    }

    fn send(&self, topic: &str, payload: &Value) {
        self.send_raw(topic, payload.to_string().into_bytes());
    }

    fn send_raw(&self, topic: &str, payload: Vec<u8>) {
        // A full queue means the broker is away; the next round publishes current values.
        if let Err(e) = self.link.publish(topic, payload, true) {
            tracing::debug!("{e}");
        }
    }

    /// Says goodbye (retained `offline`), disconnects, and waits for the thread briefly.
    pub fn stop(&mut self) {
        let _ = self
            .link
            .publish(&self.topics.status(), b"offline".to_vec(), true);
        self.stop.store(true, Ordering::SeqCst);
        // Give the connection thread a moment to flush "offline" before the disconnect.
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.link.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MqttBridge {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::status::Status;

    fn view() -> MinerView {
        MinerView {
            id: 7,
            name: "desk \"one\"".into(),
            port: "/dev/ttyUSB0".into(),
            kind: "serial".into(),
            status: Status::Online,
            status_detail: None,
            last_seen: Some(1),
            hashrate_khs: Some(55.5),
            hashrate_avg_10m: None,
            hashrate_avg_1h: None,
            hashrate_avg_24h: Some(50.0),
            shares: 3,
            accepted: 3,
            rejected: 1,
            best_diff: Some(0.25),
            best_diff_session: None,
            blocks_found: 0,
            temperature: Some(48.0),
            temp_max_24h: None,
            uptime_secs: Some(60),
            restarts: 0,
            pool: None,
            firmware: Some("V1.8.3".into()),
            lines_total: 0,
            lines_dropped: 0,
            lines_truncated: 0,
            shares_last_hour: 0,
            odds: None,
            lottery: None,
            fleet: Default::default(),
            time_mining_secs: None,
            stats_restored: None,
            shares_meaning: None,
            blocks_reported: None,
            temperature_no_sensor: false,
            firmware_family: None,
            display: None,
            reboots_last_hour: 0,
            diagnosis: Default::default(),
        }
    }

    #[test]
    fn discovery_has_a_device_per_miner_and_a_sensor_per_figure() {
        let topics = Topics::from_config(&MqttConfig::default(), "barn");
        let msgs = miner_discovery(&topics, &view());
        assert_eq!(msgs.len(), MINER_SENSORS.len());
        let (topic, temp) = &msgs[1];
        assert_eq!(
            topic,
            "homeassistant/sensor/shepherd_miner_7/temperature/config"
        );
        assert_eq!(temp["state_topic"], "shepherd/barn/miners/7/state");
        assert_eq!(temp["availability_topic"], "shepherd/barn/status");
        assert_eq!(temp["value_template"], "{{ value_json.temperature }}");
        assert_eq!(temp["device_class"], "temperature");
        assert_eq!(temp["device"]["identifiers"][0], "shepherd_miner_7");
        assert_eq!(temp["device"]["name"], "desk \"one\"");
        assert_eq!(temp["device"]["sw_version"], "V1.8.3");
        assert!(msgs[6].1.get("unit_of_measurement").is_none());
        let topics_only: Vec<String> = msgs.iter().map(|m| m.0.clone()).collect();
        assert_eq!(miner_config_topics(&topics, 7), topics_only);
        // Every value template names a field the state document has.
        let state = miner_state("barn", &view(), 1);
        for (_, p) in &msgs {
            let field = p["value_template"].as_str().unwrap();
            let field = field
                .trim_start_matches("{{ value_json.")
                .trim_end_matches(" }}");
            assert!(state.get(field).is_some(), "{field}");
        }
        let herd = herd_state("barn", &HerdTotals::default(), 1);
        for (_, p) in herd_discovery(&topics) {
            let field = p["value_template"].as_str().unwrap();
            let field = field
                .trim_start_matches("{{ value_json.")
                .trim_end_matches(" }}");
            assert!(herd.get(field).is_some(), "{field}");
        }
    }

    #[test]
    fn state_carries_the_figures() {
        let s = miner_state("barn", &view(), 5);
        assert_eq!(
            (s["schema"].as_u64(), s["site"].as_str()),
            (Some(SCHEMA), Some("barn"))
        );
        assert_eq!((s["id"].as_i64(), s["at"].as_i64()), (Some(7), Some(5)));
        assert_eq!(s["status"], "online");
        assert_eq!(s["hashrate"], 55.5);
        assert_eq!(s["shares_rejected"], 1);
    }

    #[test]
    fn documents_read_back_through_the_hub_parser() {
        let topics = Topics::from_config(&MqttConfig::default(), "barn");
        let state = miner_state("barn", &view(), 5).to_string();
        let Ok((site, crate::hub::Incoming::Miner { id, name, .. })) =
            crate::hub::parse("shepherd", &topics.miner_state(7), state.as_bytes())
        else {
            panic!("{state}")
        };
        assert_eq!(
            (site.as_str(), id, name.as_str()),
            ("barn", 7, "desk \"one\"")
        );
        let e = event_doc("barn", "block", json!({"id": 3, "at": 9, "miner": "desk"}));
        assert!(matches!(
            crate::hub::parse("shepherd", &topics.event("block"), e.to_string().as_bytes()),
            Ok((_, crate::hub::Incoming::Event { id: 3, at: 9, .. }))
        ));
        let info = site_info("barn", "http://barn.local:8080", 1).to_string();
        assert!(matches!(
            crate::hub::parse("shepherd", &topics.site_info(), info.as_bytes()),
            Ok((_, crate::hub::Incoming::Site { url: Some(_), .. }))
        ));
        assert_eq!(site_info("barn", "", 1)["url"], Value::Null);
    }
}
