//! AlertActor: every few seconds takes the herd the summarizer last published
//! ([`crate::herd::Feed`]) and reads the new events, runs the
//! [rules](rules), stores what fired or cleared in `alerts`, and hands notifications to the
//! [notifiers](notify). When MQTT is on it also publishes the herd's state to the broker
//! ([`crate::mqtt`]) from the same document.
//!
//! The rules are `[alerts]` from config.toml with the owner's changes from `/settings`
//! ([`crate::db::alert_settings`]) applied; those are read again on every run, so a change
//! takes effect at the next evaluation without a restart.
//!
//! It runs on an arbiter of its own and reads through the read-only pool, so neither the
//! reads nor the notifiers (which have threads of their own) can slow ingest.

pub mod notify;
pub mod rules;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::notify::{Destination, Notifier, NotifyStats, RetryPolicy};
use self::rules::{Engine, MinerSnapshot, Thresholds};
use crate::clock::now_ms;
use crate::config::{AlertsConfig, Config};
use crate::db::{alert_settings, alerts as sql, DbActor, ReadPool, Write};
use crate::herd::{self, HerdData, MinerView};
use crate::model::alert::{self, Notice, NoticeKind};
use crate::mqtt::MqttBridge;

/// Events read per evaluation; a backlog is worked through over several.
const SIGNS_PER_READ: usize = 10_000;

/// The rules' view of a miner.
pub fn snapshot(m: &MinerView) -> MinerSnapshot {
    MinerSnapshot {
        id: m.id,
        name: m.name.clone(),
        status: m.status,
        hashrate_khs: m.hashrate_khs,
        hashrate_avg_24h: m.hashrate_avg_24h,
        temperature: m.temperature,
        accepted: m.accepted,
        rejected: m.rejected,
        restarts: m.restarts,
        blocks_found: m.blocks_found,
        worker_rejected: (m.diagnosis.verdict == crate::diagnosis::Verdict::WorkerRejected)
            .then(|| m.diagnosis.summary.clone()),
    }
}

/// The writer storing one run's notices.
type StoreRequest = Request<DbActor, Write<()>>;

/// Evaluates the rules and publishes to MQTT.
pub struct AlertActor {
    pool: ReadPool,
    db: Addr<DbActor>,
    herd: herd::Feed,
    interval: Duration,
    /// `None` when `[alerts] enabled = false` (MQTT may still be on).
    engine: Option<Engine>,
    /// `[alerts]` as config.toml has it; `/settings` overrides apply on top.
    base: AlertsConfig,
    /// The overrides last applied (a change is logged once).
    overrides: Vec<(String, String)>,
    /// Last `miner_events` id looked at; `None` until the first run.
    watermark: Option<i64>,
    notifier: Notifier,
    mqtt: Option<MqttBridge>,
    mqtt_every: Duration,
    mqtt_last: Option<Instant>,
    /// Last record/block/incident published as an event (`None` until MQTT's first run).
    event_marks: Option<crate::db::hub::EventMarks>,
    /// The writer's counters, once [`WatchWrites`] arrived: a run of failed writes (a full
    /// disk) is an alert of its own.
    writes: Option<Arc<crate::db::IngestStats>>,
    /// Whether the failed-writes alert is out.
    writes_alerted: bool,
}

/// Watch these counters for failed database writes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchWrites(pub Arc<crate::db::IngestStats>);

/// Evaluate now (tests); answers with what was sent, once it is stored.
#[derive(Message)]
#[rtype(result = "Result<Vec<Notice>, String>")]
pub struct EvaluateNow;

/// Self-healing acted on a miner: a warning sent to the notifiers and kept in the history.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SelfHealed {
    /// Which miner.
    pub miner_id: i64,
    /// Its name.
    pub miner: String,
    /// What was done, and how it went.
    pub message: String,
}

impl Handler<SelfHealed> for AlertActor {
    type Result = ();

    fn handle(&mut self, msg: SelfHealed, _: &mut Self::Context) {
        // Alerts off: the log line and the incident entry still say it.
        self.warn_of_action(
            alert::Rule::SelfHealing,
            msg.miner_id,
            msg.miner,
            msg.message,
        );
    }
}

/// The autopilot moved a miner to another pool (failover, schedule): a warning sent to the
/// notifiers and kept in the alert history, like [`SelfHealed`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct PoolSwitched {
    /// Which miner.
    pub miner_id: i64,
    /// Its name.
    pub miner: String,
    /// Where to and why.
    pub message: String,
}

impl Handler<PoolSwitched> for AlertActor {
    type Result = ();

    fn handle(&mut self, msg: PoolSwitched, _: &mut Self::Context) {
        // Alerts off: the miner's history still has its `pool_switch` line.
        self.warn_of_action(
            alert::Rule::PoolSwitched,
            msg.miner_id,
            msg.miner,
            msg.message,
        );
    }
}

/// The program is stopping: say goodbye on MQTT and stop the delivery threads.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stopping;

impl AlertActor {
    /// From the configuration; connects to MQTT (in the background) when it is enabled.
    pub fn new(
        config: &Config,
        pool: ReadPool,
        db: Addr<DbActor>,
        herd: herd::Feed,
        stats: Arc<NotifyStats>,
    ) -> Self {
        let mqtt = config
            .mqtt
            .enabled
            .then(|| MqttBridge::start(&config.mqtt, &config.site));
        let link = mqtt.as_ref().map(MqttBridge::link);
        let destinations: Vec<Destination> = config
            .notify
            .iter()
            .filter_map(|t| Destination::from_config(t, link.as_ref(), &config.mqtt.topic_prefix))
            .collect();
        for d in &destinations {
            tracing::info!("alerts will be sent to {}", d.describe());
        }
        let a = &config.alerts;
        let notifier = Notifier::start(
            destinations,
            RetryPolicy::from_config(a),
            a.queue_size,
            Duration::from_secs(a.timeout_secs),
            stats,
        );
        // Where events start: whatever happens from now on is published.
        let event_marks = config
            .mqtt
            .enabled
            .then(|| pool.with(crate::db::hub::event_marks).ok())
            .flatten();
        Self {
            pool,
            db,
            herd,
            // One tick serves both: often enough for the rules and for MQTT.
            interval: Duration::from_secs(if config.mqtt.enabled {
                a.interval_secs.min(config.mqtt.interval_secs)
            } else {
                a.interval_secs
            }),
            engine: a.enabled.then(|| Engine::new(Thresholds::from_config(a))),
            base: a.clone(),
            overrides: Vec::new(),
            watermark: None,
            notifier,
            mqtt,
            mqtt_every: Duration::from_secs(config.mqtt.interval_secs),
            mqtt_last: None,
            event_marks,
            writes: None,
            writes_alerted: false,
        }
    }

    /// Fires when database writes fail, resolves when they work again: sent and logged, not
    /// stored (the database is what fails).
    fn check_writes(&mut self, now: i64) -> Option<Notice> {
        // Alerts off: no alert (the banner and /healthz still say it).
        self.engine.as_ref()?;
        let failure = self.writes.as_ref()?.write_failure();
        let (kind, severity, message) = match (&failure, self.writes_alerted) {
            (Some(f), false) => (
                NoticeKind::Fired,
                alert::Severity::Warning,
                format!(
                    "the Shepherd cannot write its database: {}. Free disk space; lines are kept \
                     in memory and retried meanwhile",
                    f.error
                ),
            ),
            (None, true) => (
                NoticeKind::Resolved,
                alert::Severity::Info,
                "the Shepherd writes its database again".to_owned(),
            ),
            _ => return None,
        };
        self.writes_alerted = failure.is_some();
        Some(Notice {
            miner_id: 0,
            miner: "shepherd".into(),
            rule: alert::Rule::DatabaseWrites,
            kind,
            severity,
            message,
            at: now,
        })
    }

    /// One run: read, evaluate, publish; returns the notices (already queued for sending)
    /// and the request storing them.
    fn run(&mut self) -> Result<(Vec<Notice>, Option<StoreRequest>), String> {
        let now = now_ms();
        if self.engine.is_some() && self.watermark.is_none() {
            let (active, mark) = self
                .pool
                .with(|c| Ok((sql::active_for_engine(c)?, sql::event_watermark(c)?)))
                .map_err(|e| e.to_string())?;
            if let Some(engine) = self.engine.as_mut() {
                engine.restore(&active);
            }
            self.watermark = Some(mark);
        }
        let after = self.watermark.unwrap_or(0);
        let herd = self.herd.current().map_err(|e| e.to_string())?;
        let ((signs, mark), overrides) = if self.engine.is_some() {
            self.pool
                .with(|c| {
                    Ok((
                        sql::signs_after(c, after, SIGNS_PER_READ)?,
                        alert_settings::overrides(c)?,
                    ))
                })
                .map_err(|e| e.to_string())?
        } else {
            ((Vec::new(), after), Vec::new())
        };
        self.watermark = Some(mark);
        self.apply_overrides(overrides);
        self.publish_mqtt(&herd);
        let miners = &herd.miners;
        let writes = self.check_writes(now);
        if let Some(n) = &writes {
            match n.kind {
                NoticeKind::Resolved => tracing::info!("alert resolved: {}", n.title()),
                _ => tracing::warn!("alert: {}", n.message),
            }
            self.notifier.notify(n);
        }
        let Some(engine) = self.engine.as_mut() else {
            return Ok((Vec::new(), None));
        };
        let snaps: Vec<MinerSnapshot> = miners.iter().map(snapshot).collect();
        let mut notices = engine.evaluate(now, &snaps, &signs);
        if notices.is_empty() {
            notices.extend(writes);
            return Ok((notices, None));
        }
        for n in &notices {
            match n.kind {
                NoticeKind::Resolved => tracing::info!("alert resolved: {}", n.title()),
                _ => tracing::warn!("alert: {}", n.message),
            }
            self.notifier.notify(n);
        }
        let stored = notices.clone();
        let req = self.db.send(Write::new(move |c| sql::store(c, &stored)));
        notices.extend(writes);
        Ok((notices, Some(req)))
    }

    /// Puts config.toml's rules with `overrides` in force (config.toml's alone if they no
    /// longer pass the checks, which only a hand-edited database can cause).
    fn apply_overrides(&mut self, overrides: Vec<(String, String)>) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if overrides == self.overrides {
            return;
        }
        let rules = match self.base.with_overrides(&overrides) {
            Ok(merged) => {
                tracing::info!(
                    "alert rules: {} setting(s) changed on /settings in force",
                    overrides.len()
                );
                merged
            }
            Err(e) => {
                tracing::warn!("alert rules changed on /settings are ignored: {e}");
                self.base.clone()
            }
        };
        engine.set_thresholds(Thresholds::from_config(&rules));
        self.overrides = overrides;
    }

    /// Something the Shepherd did on its own to a miner: a warning to the notifiers, kept in
    /// the alert history (nothing when alerts are off).
    fn warn_of_action(&mut self, rule: alert::Rule, miner_id: i64, miner: String, message: String) {
        if self.engine.is_none() {
            return;
        }
        let n = Notice {
            miner_id,
            miner,
            rule,
            kind: NoticeKind::Fired,
            severity: alert::Severity::Warning,
            message,
            at: now_ms(),
        };
        self.notifier.notify(&n);
        self.db
            .do_send(Write::new(move |c| sql::store(c, std::slice::from_ref(&n))));
    }

    fn publish_mqtt(&mut self, herd: &HerdData) {
        let Some(mqtt) = &self.mqtt else { return };
        if self
            .mqtt_last
            .is_some_and(|t| t.elapsed() < self.mqtt_every)
        {
            return;
        }
        self.mqtt_last = Some(Instant::now());
        mqtt.publish_herd(&herd.miners, &herd.totals);
        // Events since the last run (history is not replayed at start).
        let marks = self.event_marks;
        let read = self.pool.with(|c| match marks {
            None => Ok((Vec::new(), crate::db::hub::event_marks(c)?)),
            Some(m) => crate::db::hub::events_after(c, m, EVENTS_PER_RUN),
        });
        match read {
            Ok((events, next)) => {
                mqtt.publish_events(&events);
                self.event_marks = Some(next);
            }
            Err(e) => tracing::warn!("MQTT events: {e}"),
        }
    }
}

/// Events of each kind published per run; a backlog goes out over several.
const EVENTS_PER_RUN: usize = 500;

impl Actor for AlertActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, _| match act.run() {
            Ok((_, Some(req))) => {
                actix::spawn(async move {
                    if let Ok(Err(e)) = req.await {
                        tracing::warn!("storing alerts failed: {e}");
                    }
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("alerts: {e}"),
        });
    }
}

impl Handler<EvaluateNow> for AlertActor {
    type Result = ResponseFuture<Result<Vec<Notice>, String>>;

    fn handle(&mut self, _: EvaluateNow, _: &mut Self::Context) -> Self::Result {
        // Publish MQTT state on demand too, so a test need not wait for the interval.
        self.mqtt_last = None;
        let run = self.run();
        Box::pin(async move {
            let (notices, req) = run?;
            if let Some(req) = req {
                req.await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Ok(notices)
        })
    }
}

impl Handler<WatchWrites> for AlertActor {
    type Result = ();

    fn handle(&mut self, msg: WatchWrites, _: &mut Self::Context) {
        self.writes = Some(msg.0);
    }
}

impl Handler<Stopping> for AlertActor {
    type Result = ();

    fn handle(&mut self, _: Stopping, _: &mut Self::Context) {
        self.notifier.stop();
        if let Some(mut m) = self.mqtt.take() {
            m.stop();
        }
    }
}
