//! The Shepherd: watches over a flock of NerdMiner ESP32 lottery miners plugged in over USB.
//!
//! One process of actix actors: a MinerActor per miner reads its serial log, the DbActor is
//! the only SQLite writer, the summarizer keeps dashboard figures current, and the web server
//! serves pages and the JSON API. `docs/ARCHITECTURE.md` is the map: which module may import
//! which (the database is the ground floor, `model` the pure nouns under it), the actors and
//! their messages, and where a log format, an API field, a kiosk view or an alert channel goes.

#![warn(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// Bitcoin address validation (bech32/bech32m, base58check).
pub mod address;
/// Alert rules, the actor that evaluates them, and the notifiers (webhook, ntfy, MQTT).
pub mod alerts;
/// `shepherd run`: actor wiring, startup and orderly shutdown.
pub mod app;
/// Failover and schedules carried out from the Pi, once a minute.
pub mod autopilot;
/// The command line: clap definitions and every subcommand (`run` is in `app`).
pub mod cli;
/// Wall-clock helpers.
pub mod clock;
/// `config.toml`: options, defaults, validation.
pub mod config;
/// SQLite: schema, migrations, the writer actor, read queries.
pub mod db;
/// "Why is it not mining?": the chain Wi-Fi → pool → subscribed → authorized → hashing →
/// shares, with the line that proves each link.
pub mod diagnosis;
/// USB device discovery: ESP32 boards recognised as they are plugged in, replugged miners
/// reconnected, new boards offered for onboarding.
pub mod discovery;
/// A miner's flash: SPIFFS, partition table, ROM-loader protocol, reset sequences.
pub mod flash;
/// Fleet configuration as desired state: pool profiles, desired configuration per miner,
/// worker names, drift, failover and schedules.
pub mod fleet;
/// The herd document (`/api/herd_data`, SSE, alerts, MQTT, metrics): defined and built
/// once, published by the summarizer.
pub mod herd;
/// Several sites in one view through an MQTT broker: topics, the subscriber of `--hub`.
pub mod hub;
/// Incidents: a miner's troubles told as episodes, and availability (pure).
pub mod incidents;
/// Firmware inventory: versions grouped against the newest known (pure).
pub mod inventory;
/// Lottery maths: expected time to a block and the chance of one, from difficulty and hashrate.
pub mod lottery;
/// Prometheus text exposition for `/metrics`.
pub mod metrics;
/// Miners: serial reading, framing, NerdMiner log parsing.
pub mod miner;
/// The nouns every layer shares, as pure data: events, alerts, devices.
pub mod model;
/// MQTT: miners' state and Home Assistant discovery on a broker.
pub mod mqtt;
/// Names people type must be visible.
pub mod names;
/// BTC price and network figures: providers, HTTP, cache, and the actor that fetches them.
pub mod price;
/// Canary rollout: one pool/address change to many miners, canary first, stop on failure.
pub mod rollout;
/// Self-healing (opt-in): resets and power cycles for stuck miners, rate-limited.
pub mod selfheal;
/// Simulated NerdMiners on pseudo-terminals (demo mode and tests).
pub mod sim;
/// The summarizer actor.
pub mod summarizer;
/// Pure summarizing of parsed events into dashboard figures.
pub mod summary;
/// Starts and stops MinerActors as miners come and go.
pub mod supervisor;
/// Web server, pages and JSON API.
pub mod web;
