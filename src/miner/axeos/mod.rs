//! AxeOS miners (Bitaxe, NerdQAxe and the other boards running bitaxeorg/ESP-Miner's
//! firmware), read over their HTTP API on the LAN instead of a serial port.
//!
//! `parse` turns the JSON answers into the [`MinerEvent`]s the NerdMiner path stores; `http`
//! makes the requests; [`Poller`] is one miner's state between polls (pure apart from the
//! client, so tests drive it against the mock in `sim::axeos`); [`run`] is the thread a
//! `MinerActor` starts for a miner whose `kind` is `axeos`: it polls `/api/system/info`
//! every [`POLL`], reads `/api/system/asic` once, and runs RESET / SET_CONFIG / GET_CONFIG
//! commands as AxeOS requests. Readings go to the DbActor as `LinesRead`, exactly like
//! serial lines, so every page, alert, record, MQTT topic and metric shows them.

pub mod http;
pub mod logs;
pub mod parse;
pub mod scan;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::clock::now_ms;
use crate::db::commands::{self, CommandKind};
use crate::db::{LinesRead, LinkChanged, LinkState, Write};
use crate::miner::reader::Sink;
use crate::model::event::MinerEvent;
use crate::model::lines::LineBatch;

use http::Client;
use parse::{Asic, Info};

/// How often `/api/system/info` is read (AxeOS itself refreshes its figures every few
/// seconds; its own dashboard polls every 5 s).
pub const POLL: Duration = Duration::from_secs(10);

/// Whether a miner's `port` is an AxeOS address rather than a device path.
pub fn is_url(port: &str) -> bool {
    port.starts_with("http://") || port.starts_with("https://")
}

/// What one poll found: the line and events to store, and the link state when it changed.
#[derive(Debug, Default, PartialEq)]
pub struct Polled {
    /// The reading as a raw-log line with its events (none when the miner did not answer).
    pub line: Option<(String, Vec<MinerEvent>)>,
    /// New link state and its reason, only when it changed.
    pub link: Option<(LinkState, Option<String>)>,
    /// The pool keys to remember as the miner's configuration (for fleet drift), when they
    /// changed.
    pub config: Option<Map<String, Value>>,
}

/// One AxeOS miner between polls.
pub struct Poller {
    client: Client,
    last: Option<Info>,
    asic: Option<Asic>,
    asic_tried: bool,
    link: Option<(LinkState, Option<String>)>,
    config: Option<Map<String, Value>>,
    /// The pool password last written: AxeOS shows it as `*****`, so drift compares with it.
    password: Option<String>,
    /// Readings made while running a command, for the loop to store.
    pending: Vec<Polled>,
}

impl Poller {
    /// A poller for the miner at `url` (normalized by `db::miners::normalize_url`).
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self {
            client: Client::new(url, timeout),
            last: None,
            asic: None,
            asic_tried: false,
            link: None,
            config: None,
            password: None,
            pending: Vec::new(),
        }
    }

    /// Readings made while running commands since the last call (to be stored like polls).
    pub fn take_pending(&mut self) -> Vec<Polled> {
        std::mem::take(&mut self.pending)
    }

    /// Polls and keeps the reading for [`Poller::take_pending`].
    fn poll_kept(&mut self) {
        let p = self.poll();
        self.pending.push(p);
    }

    /// The miner's pool in the NerdMiner configuration keys fleet drift compares.
    fn pool_config(&self, i: &Info) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(p) = &i.pool {
            m.insert("poolString".into(), p.host.clone().into());
            m.insert("portNumber".into(), p.port.into());
            m.insert("btcString".into(), p.user.clone().into());
            if let Some(pw) = &self.password {
                m.insert("poolPassword".into(), pw.clone().into());
            }
        }
        m
    }

    /// The last reading, if the miner ever answered.
    pub fn last(&self) -> Option<&Info> {
        self.last.as_ref()
    }

    fn set_link(
        &mut self,
        state: LinkState,
        detail: Option<String>,
    ) -> Option<(LinkState, Option<String>)> {
        let new = (state, detail);
        (self.link.as_ref() != Some(&new)).then(|| {
            self.link = Some(new.clone());
            new
        })
    }

    /// Reads the miner once.
    pub fn poll(&mut self) -> Polled {
        let info = self
            .client
            .get("/api/system/info")
            .and_then(|body| parse::info(&body));
        let info = match info {
            Ok(i) => i,
            Err(why) => {
                // A miner that vanished keeps its last figures; its status says why.
                return Polled {
                    link: self.set_link(LinkState::Offline, Some(why)),
                    ..Polled::default()
                };
            }
        };
        if !self.asic_tried {
            self.asic_tried = true;
            // Absent on old firmware: the chip model then comes from the info answer.
            self.asic = self
                .client
                .get("/api/system/asic")
                .and_then(|b| parse::asic(&b))
                .ok();
        }
        let events = parse::events(self.last.as_ref(), &info, self.asic.as_ref());
        let line = parse::status_line(&info);
        let config = self.pool_config(&info);
        let config = (self.config.as_ref() != Some(&config)).then(|| {
            self.config = Some(config.clone());
            config
        });
        self.last = Some(info);
        Polled {
            line: Some((line, events)),
            link: self.set_link(LinkState::Connected, None),
            config,
        }
    }

    /// Runs one command; `Ok` carries the detail sentence and an optional result.
    pub fn command(
        &mut self,
        kind: CommandKind,
        payload: Option<&str>,
    ) -> Result<(String, Option<Value>), String> {
        let reason = payload
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned));
        match kind {
            CommandKind::Reset if reason.as_deref() == Some("identify") => {
                // POST /api/system/identify: 2.12 on (v2.12.0 http_server.c:704, :1304).
                let body = self.client.post("/api/system/identify").map_err(|e| {
                    if e.contains("has no") {
                        format!(
                            "this AxeOS has no identify (it came with 2.12): {e}; restart it \
                             instead to see which one reboots"
                        )
                    } else {
                        e
                    }
                })?;
                Ok((
                    said(&body, "identify sent: the miner says \"Hi!\" on its screen"),
                    None,
                ))
            }
            CommandKind::Reset => {
                // POST /api/system/restart (v2.12.0 http_server.c:731).
                let body = self.client.post("/api/system/restart")?;
                Ok((said(&body, "restart sent"), None))
            }
            CommandKind::SetConfig => {
                let change = match payload.map(serde_json::from_str::<Value>) {
                    Some(Ok(Value::Object(m))) => m,
                    _ => return Err("the configuration must be a JSON object".into()),
                };
                if self.last.is_none() {
                    self.poll_kept();
                }
                let info = self
                    .last
                    .as_ref()
                    .ok_or("the miner has not answered yet: nothing was changed")?;
                let body = parse::pool_patch(info, &change)?;
                self.client.patch("/api/system", &body)?;
                if let Some(pw) = change.get("poolPassword").and_then(Value::as_str) {
                    self.password = Some(pw.to_owned());
                }
                // AxeOS stores pool settings and uses them from its next start (its web page
                // asks for a restart): restart now, as a NerdMiner reboots after a write,
                // unless told not to.
                let no_reset = change.get("no_reset").and_then(Value::as_bool) == Some(true);
                let applied = if no_reset {
                    "it uses them from its next restart"
                } else {
                    self.client.post("/api/system/restart").map_err(|e| {
                        format!("the settings were stored, but the restart that applies them failed: {e}")
                    })?;
                    "restarted to use them"
                };
                // Read back what it now reports so the result shows the stored change.
                self.poll_kept();
                let pool = self
                    .last
                    .as_ref()
                    .and_then(|i| i.pool.as_ref())
                    .map(parse::Pool::label)
                    .unwrap_or_default();
                let result = self
                    .last
                    .as_ref()
                    .map(|i| Value::Object(self.pool_config(i)));
                Ok((
                    format!("PATCH /api/system accepted, {applied}; the miner reports pool {pool}"),
                    result,
                ))
            }
            CommandKind::GetConfig => {
                self.poll_kept();
                let info = self.last.as_ref().ok_or("the miner did not answer")?;
                Ok((
                    "read /api/system/info".into(),
                    Some(Value::Object(self.pool_config(info))),
                ))
            }
            CommandKind::Doctor => Err(
                "DOCTOR checks a serial flash link; an AxeOS miner is read over HTTP (its \
                 status line says whether it answers)"
                    .into(),
            ),
        }
    }
}

fn said(body: &str, fallback: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .map_or_else(|| fallback.to_owned(), |m| format!("{fallback} ({m})"))
}

/// A command for an AxeOS miner's thread.
#[derive(Debug)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// What to do.
    pub kind: CommandKind,
    /// Its payload.
    pub payload: Option<String>,
}

/// One AxeOS miner's thread: polls until `stop`, running commands from `jobs` between polls.
pub fn run(miner_id: i64, url: String, sink: Sink, stop: Arc<AtomicBool>, jobs: Receiver<Job>) {
    tracing::info!(miner = miner_id, %url, "reading AxeOS miner");
    // The live log on its own thread: a blocked websocket never delays a poll or a command.
    let logs = {
        let (url, sink, stop) = (url.clone(), sink.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("axeos-log-{miner_id}"))
            .spawn(move || logs::run(miner_id, &url, &sink, &stop))
    };
    let mut poller = Poller::new(&url, http::TIMEOUT);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            next = Instant::now() + POLL;
            let polled = poller.poll();
            deliver(miner_id, &sink, polled);
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match jobs.recv_timeout(wait) {
            Ok(job) => run_job(miner_id, &sink, &mut poller, job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    while let Ok(job) = jobs.try_recv() {
        finish(&sink, job.id, Err("shepherd is stopping".into()));
    }
    stop.store(true, Ordering::Relaxed);
    match logs {
        // Its last lines are sent before the "stopped" link state.
        Ok(t) => {
            let _ = t.join();
        }
        Err(e) => tracing::warn!(miner = miner_id, "the AxeOS log thread did not start: {e}"),
    }
    sink.db.do_send(LinkChanged {
        miner_id,
        state: LinkState::Offline,
        detail: Some("shepherd stopped reading".into()),
    });
}

fn deliver(miner_id: i64, sink: &Sink, polled: Polled) {
    if let Some((state, detail)) = polled.link {
        if state != LinkState::Connected {
            tracing::warn!(
                miner = miner_id,
                "{}",
                detail.as_deref().unwrap_or("offline")
            );
        }
        sink.db.do_send(LinkChanged {
            miner_id,
            state,
            detail,
        });
    }
    if let Some((text, mut events)) = polled.line {
        sink.stats.queued_lines.fetch_add(1, Ordering::Relaxed);
        let mut lines = LineBatch::default();
        lines.push(now_ms(), &text, false, &mut events);
        sink.db.do_send(LinesRead {
            miner_id,
            lines,
            dropped: 0,
        });
    }
    if let Some(config) = polled.config {
        let json = Value::Object(config).to_string();
        sink.db.do_send(Write::new(move |c| {
            commands::store_config(c, miner_id, &json)
        }));
    }
}

fn run_job(miner_id: i64, sink: &Sink, poller: &mut Poller, job: Job) {
    let id = job.id;
    let what = format!("{} over HTTP", job.kind);
    sink.db
        .do_send(Write::new(move |c| commands::start(c, id, &what)));
    let out = poller.command(job.kind, job.payload.as_deref());
    for polled in poller.take_pending() {
        deliver(miner_id, sink, polled);
    }
    if let Err(e) = &out {
        tracing::warn!(miner = miner_id, "command #{id} failed: {e}");
    }
    finish(sink, id, out);
}

fn finish(sink: &Sink, id: i64, out: Result<(String, Option<Value>), String>) {
    sink.db.do_send(Write::new(move |c| match out {
        Ok((detail, result)) => commands::finish(c, id, true, &detail, result.as_ref()),
        Err(e) => commands::finish(c, id, false, &e, Some(&json!({ "error": e }))),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::axeos::{Fault, MockAxeOs, Version};

    const QUICK: Duration = Duration::from_millis(300);

    fn stats(p: &Polled) -> (f64, u64) {
        let (_, events) = p.line.as_ref().expect("a reading");
        events
            .iter()
            .find_map(|e| match e {
                MinerEvent::AxeOsStats {
                    hashrate_khs,
                    accepted,
                    ..
                } => Some((*hashrate_khs, *accepted)),
                _ => None,
            })
            .expect("stats")
    }

    #[test]
    fn every_version_of_the_mock_reads_the_same_way() {
        for (version, ghs) in [
            (Version::V2_10, 480.0),
            (Version::V2_12, 1150.0),
            (Version::V2_15, 2300.0),
        ] {
            let mock = MockAxeOs::start(version, ghs, "axe").unwrap();
            mock.set_uptime_offset(600);
            let mut p = Poller::new(&mock.url(), QUICK);
            let first = p.poll();
            assert_eq!(
                first.link,
                Some((LinkState::Connected, None)),
                "{version:?}"
            );
            let (khs, accepted) = stats(&first);
            assert!(
                (khs - ghs * 1e6).abs() < ghs * 1e6 * 0.1,
                "{version:?}: {khs} KH/s"
            );
            assert!(accepted >= 200, "{version:?}: {accepted}");
            let (line, events) = first.line.as_ref().unwrap();
            assert!(line.contains("public-pool.io:21496"), "{line}");
            assert!(events.contains(&MinerEvent::FirmwareVersion {
                version: version.label().into()
            }));
            assert!(events
                .iter()
                .any(|e| matches!(e, MinerEvent::ChipModel { .. })));
            let best = p.last().unwrap().best_session_diff.unwrap();
            assert!(best > 1e6, "{version:?}: best {best}");
            assert_eq!(p.last().unwrap().pools_array, version == Version::V2_15);
            assert_eq!(
                first.config.as_ref().unwrap()["poolString"],
                "public-pool.io"
            );
            // The next poll changes nothing but the figures.
            let second = p.poll();
            assert_eq!(second.link, None);
            assert_eq!(second.config, None);
        }
    }

    #[test]
    fn faults_mark_the_miner_offline_with_a_reason_and_it_comes_back() {
        let mock = MockAxeOs::start(Version::V2_12, 1000.0, "axe").unwrap();
        let mut p = Poller::new(&mock.url(), QUICK);
        assert!(p.poll().line.is_some());
        let cases = [
            (Fault::ServerError, "HTTP 500"),
            (Fault::Garbage, "not JSON"),
            (Fault::Silent, "did not answer"),
        ];
        for (fault, words) in cases {
            mock.set_fault(fault);
            let polled = p.poll();
            assert_eq!(polled.line, None, "{fault:?}");
            let (state, detail) = polled.link.expect("a link change");
            assert_eq!(state, LinkState::Offline);
            assert!(
                detail.as_deref().unwrap().contains(words),
                "{fault:?}: {detail:?}"
            );
            // Back to normal between faults, so each one is a change.
            mock.set_fault(Fault::None);
            assert_eq!(p.poll().link, Some((LinkState::Connected, None)));
        }
        mock.set_present(false);
        std::thread::sleep(Duration::from_millis(100));
        let gone = p.poll();
        let (state, detail) = gone.link.expect("vanished");
        assert_eq!(state, LinkState::Offline);
        assert!(detail.unwrap().contains("refused"));
        assert_eq!(p.poll().link, None, "the same reason is not repeated");
        assert!(p.last().is_some(), "the last reading is kept");
        mock.set_present(true);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(p.poll().link, Some((LinkState::Connected, None)));
    }

    #[test]
    fn restart_identify_and_pool_changes_reach_the_miner() {
        let old = MockAxeOs::start(Version::V2_10, 480.0, "old").unwrap();
        let new = MockAxeOs::start(Version::V2_15, 1150.0, "new").unwrap();
        for mock in [&old, &new] {
            let mut p = Poller::new(&mock.url(), QUICK);
            p.poll();
            let (detail, _) = p.command(CommandKind::Reset, None).unwrap();
            assert!(detail.contains("restart"), "{detail}");
            assert_eq!(mock.restarts(), 1);
            let change = r#"{"poolString":"pool.example","portNumber":3333}"#;
            let (detail, result) = p.command(CommandKind::SetConfig, Some(change)).unwrap();
            assert!(detail.contains("pool.example:3333"), "{detail}");
            assert_eq!(mock.restarts(), 2, "restarted to apply the pool");
            let quiet = r#"{"btcString":"bc1qother.w","no_reset":true}"#;
            p.command(CommandKind::SetConfig, Some(quiet)).unwrap();
            assert_eq!(mock.restarts(), 2);
            assert_eq!(result.unwrap()["poolString"], "pool.example");
            assert_eq!(mock.primary_pool(), "pool.example:3333");
            let bad = p.command(CommandKind::SetConfig, Some(r#"{"timezone":1}"#));
            assert!(bad.unwrap_err().contains("timezone"));
        }
        // 2.15 takes pools only as the array; before, the stratum fields.
        assert!(new.patches()[0].get("pools").is_some());
        assert!(old.patches()[0].get("stratumURL").is_some());
        let identify = r#"{"reason":"identify"}"#;
        let mut p = Poller::new(&new.url(), QUICK);
        assert!(p
            .command(CommandKind::Reset, Some(identify))
            .unwrap()
            .0
            .contains("Hi!"));
        assert_eq!(new.identifies(), 1);
        let mut p = Poller::new(&old.url(), QUICK);
        let e = p.command(CommandKind::Reset, Some(identify)).unwrap_err();
        assert!(e.contains("no identify"), "{e}");
        assert_eq!(old.restarts(), 2, "identify never falls back to a restart");
    }

    #[test]
    fn a_refused_write_says_axeos_wants_a_private_address() {
        let mock = MockAxeOs::start(Version::V2_12, 1000.0, "axe").unwrap();
        mock.refuse_writes(true);
        let mut p = Poller::new(&mock.url(), QUICK);
        let e = p.command(CommandKind::Reset, None).unwrap_err();
        assert!(e.contains("private addresses"), "{e}");
        assert_eq!(mock.restarts(), 0);
    }

    #[test]
    fn a_restart_is_seen_as_a_reboot() {
        let mock = MockAxeOs::start(Version::V2_12, 1000.0, "axe").unwrap();
        mock.set_uptime_offset(3600);
        let mut p = Poller::new(&mock.url(), QUICK);
        p.poll();
        p.command(CommandKind::Reset, None).unwrap();
        let (_, events) = p.poll().line.unwrap();
        assert!(events.contains(&MinerEvent::Boot {
            reset_reason: "SW_CPU_RESET".into()
        }));
    }

    #[test]
    fn the_subnet_probe_finds_the_mock_and_skips_what_is_not_axeos() {
        let mock = MockAxeOs::start(Version::V2_12, 1000.0, "found-me").unwrap();
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let found = scan::probe(vec![dead, mock.url()], QUICK);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].url, mock.url());
        assert_eq!(found[0].hostname.as_deref(), Some("found-me"));
    }
}
