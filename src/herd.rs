//! The herd document: what `/api/herd_data`, the SSE stream, the pages and kiosks, the alert
//! rules, MQTT and `/metrics` all read. Defined here once, built from the database by
//! [`build`] (rows read by column name, SQL in [`crate::db::queries`]), and built once per
//! change by the summarizer, which publishes it through a [`Publisher`]; readers hold a
//! [`Feed`] and take the latest document, or build one themselves only before the first is
//! published.
//!
//! Adding an API field: the summary (`crate::summary`, a `miner_summary` column), one aliased
//! column in `MINER_VIEW_SQL`, one field in [`MinerView`] read by name in [`miner_views`],
//! and the page that shows it.

use std::sync::Arc;

use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::actor::IngestSnapshot;
use crate::db::queries;
use crate::db::records::{self, FoundBlock, LotteryFigures, ShareRecord};
use crate::db::{DbError, IngestStats, ReadPool};
use crate::diagnosis::{self, Diagnosis, Evidence, Verdict};
use crate::lottery::{self, Odds};
use crate::model::status::{derive_status, Status};
use crate::price::cache::{self, NetworkView, PriceView};
use crate::summary::NO_SENSOR_AFTER_MS;

/// `/api/herd_data`: the one document every dashboard polls (shape in the README).
#[derive(Debug, Clone, Serialize)]
pub struct HerdData {
    /// Program version.
    pub version: &'static str,
    /// This Shepherd's site (`[site] name`, default the hostname): its topic level on MQTT.
    pub site: String,
    /// Server clock (Unix ms), so pages can tell how old their data is.
    pub server_time: i64,
    /// Herd-wide figures.
    pub totals: HerdTotals,
    /// Every miner.
    pub miners: Vec<MinerView>,
    /// Ingest counters.
    pub ingest: IngestSnapshot,
    /// Last known BTC price (null-safe: nulls when never fetched).
    pub price: PriceView,
    /// Last known network difficulty, hashrate and height.
    pub network: NetworkView,
    /// The herd's lottery odds at its current hashrate; null without a network difficulty.
    pub odds: Option<Odds>,
    /// The herd's best shares, luck, coin flips and blocks found.
    pub lottery: HerdLottery,
}

/// The lottery part of the herd document.
#[derive(Debug, Clone, Serialize)]
pub struct HerdLottery {
    /// Herd-wide best share, luck and coin flips.
    #[serde(flatten)]
    pub figures: LotteryFigures,
    /// The herd's top 10 best shares.
    pub records: Vec<ShareRecord>,
    /// The newest live record of any miner.
    pub latest_record: Option<ShareRecord>,
    /// The newest record that beat the herd's best: pages announce it once (by id) as
    /// "new herd record".
    pub latest_herd_record: Option<ShareRecord>,
    /// Every block found, newest first.
    pub found_blocks: Vec<FoundBlock>,
    /// When a test celebration was last asked for on /settings (Unix ms): pages show it,
    /// marked TEST, for a minute.
    pub test_celebration_at: Option<i64>,
}

/// Builds the herd document from one connection at `now` (Unix ms). Blocking: the
/// summarizer calls it once per change ([`Publisher`]); everybody else reads what it
/// published ([`Feed`]).
pub fn build(
    c: &Connection,
    config: &Config,
    ingest: IngestSnapshot,
    now: i64,
) -> rusqlite::Result<HerdData> {
    let stall = stall_ms(config);
    let network = cache::network_view(c, &config.network, now)?;
    let (per, herd_figures) = records::lottery_figures(c, now, network.difficulty)?;
    let mut miners = miner_views(c, now, stall)?;
    let price = cache::price_view(c, &config.price, now)?;
    let keys = records::miner_keys(c)?;
    let fleet: std::collections::HashMap<i64, crate::db::fleet::HerdFleet> =
        crate::db::fleet::fleet(c)?
            .iter()
            .map(|f| (f.id, f.into()))
            .collect();
    let lottery = HerdLottery {
        figures: herd_figures,
        records: records::herd_records(c)?,
        latest_record: records::latest_record(c)?,
        latest_herd_record: records::latest_herd_record(c)?,
        found_blocks: records::found_blocks(c)?,
        test_celebration_at: records::test_celebration_at(c)?,
    };
    for m in &mut miners {
        m.fleet = fleet.get(&m.id).cloned().unwrap_or_default();
        m.odds = miner_odds(m, network.difficulty);
        m.lottery = Some(
            keys.get(&m.id)
                .and_then(|k| per.get(k))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let totals = totals(&miners);
    let odds = network
        .difficulty
        .and_then(|d| lottery::odds(d, totals.hashrate_khs * 1000.0));
    Ok(HerdData {
        version: env!("CARGO_PKG_VERSION"),
        site: config.site.effective_name(),
        server_time: now,
        totals,
        miners,
        ingest,
        price,
        network,
        odds,
        lottery,
    })
}

/// Odds at the hashrate the miner runs at now: an offline miner is not in the draw.
fn miner_odds(m: &MinerView, difficulty: Option<f64>) -> Option<Odds> {
    if m.status != Status::Online {
        return None;
    }
    lottery::odds(difficulty?, m.hashrate_khs? * 1000.0)
}

/// `[summarizer] stall_secs` in ms: how long a connected miner may be silent.
pub fn stall_ms(config: &Config) -> i64 {
    i64::try_from(config.summarizer.stall_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// One miner as dashboards show it.
#[derive(Debug, Clone, Serialize)]
pub struct MinerView {
    /// Row id.
    pub id: i64,
    /// Owner's name for it.
    pub name: String,
    /// Serial device.
    pub port: String,
    /// `serial`, `demo` or `axeos` (a Bitaxe/NerdQAxe read over HTTP; `port` is its URL).
    pub kind: String,
    /// Derived status.
    pub status: Status,
    /// Why it is offline / in error, with a hint.
    pub status_detail: Option<String>,
    /// Last line received (Unix ms).
    pub last_seen: Option<i64>,
    /// Current 10-s average hashrate (KH/s).
    pub hashrate_khs: Option<f64>,
    /// Average over 10 minutes.
    pub hashrate_avg_10m: Option<f64>,
    /// Average over 1 hour.
    pub hashrate_avg_1h: Option<f64>,
    /// Average over 24 hours.
    pub hashrate_avg_24h: Option<f64>,
    /// Shares, all sessions.
    pub shares: i64,
    /// Accepted shares.
    pub accepted: i64,
    /// Rejected shares.
    pub rejected: i64,
    /// Best difficulty ever (null where the board does not report it).
    pub best_diff: Option<f64>,
    /// Best difficulty since boot.
    pub best_diff_session: Option<f64>,
    /// Blocks found.
    pub blocks_found: i64,
    /// Chip temperature °C (null where the board does not report it).
    pub temperature: Option<f64>,
    /// Highest temperature in 24 h.
    pub temp_max_24h: Option<f64>,
    /// Uptime since the last boot (s): from the boot we saw, or the firmware's `Time mining`
    /// on miners that do not restore it from NVS; null when unknown.
    pub uptime_secs: Option<i64>,
    /// The firmware's `Time mining` (s): monitor seconds, also when not hashing, and a
    /// lifetime figure on miners that restore their stats from NVS.
    pub time_mining_secs: Option<i64>,
    /// Whether the miner restores its counters from NVS at boot (`saveStatsToNVS`); null
    /// until known.
    pub stats_restored: Option<bool>,
    /// What `shares` counts: `pool_accepted` (firmware 1.8.0 on) or `local` (up to 1.7);
    /// null until the version is known.
    pub shares_meaning: Option<String>,
    /// The firmware's own valid-blocks figure (lifetime where restored); `blocks_found`
    /// counts only blocks found while watched.
    pub blocks_reported: Option<i64>,
    /// The temperature reads a flat ~53 °C: a classic ESP32 without a working sensor.
    pub temperature_no_sensor: bool,
    /// Firmware family when not NerdMiner_v2 (`SparkMiner`, `LeafMiner`).
    pub firmware_family: Option<String>,
    /// The display driver the firmware announced at boot.
    pub display: Option<String>,
    /// Reboots in the last hour.
    pub reboots_last_hour: i64,
    /// Reboots seen.
    pub restarts: i64,
    /// Pool it mines on.
    pub pool: Option<String>,
    /// Firmware version it reported.
    pub firmware: Option<String>,
    /// Lines stored.
    pub lines_total: i64,
    /// Lines dropped because the database fell behind.
    pub lines_dropped: i64,
    /// Lines cut at the length limit.
    pub lines_truncated: i64,
    /// Shares accepted in the last 60 minutes (from the per-minute history).
    pub shares_last_hour: i64,
    /// Lottery odds at its current hashrate (null unless online and the network difficulty
    /// is known); filled in by [`build`], not by SQL.
    pub odds: Option<Odds>,
    /// Best share, luck and coin flips (filled in by [`build`] from the lottery tables).
    pub lottery: Option<LotteryFigures>,
    /// Desired configuration vs read-back, and its worker's page on the pool (filled in by
    /// [`build`] from the fleet tables, see [`crate::db::fleet::HerdFleet`]).
    pub fleet: crate::db::fleet::HerdFleet,
    /// Why it is (not) mining: the chain Wi-Fi → pool → subscribed → authorized → hashing →
    /// shares, each link with the line that proves it (see [`crate::diagnosis`]).
    pub diagnosis: Diagnosis,
}

/// Herd-wide figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HerdTotals {
    /// Miners configured.
    pub miners: usize,
    /// Miners online.
    pub online: usize,
    /// Sum of current hashrates of online miners (KH/s).
    pub hashrate_khs: f64,
    /// Sum of 24-h averages (KH/s).
    pub hashrate_avg_24h: f64,
    /// Shares, all miners.
    pub shares: i64,
    /// Best difficulty of any miner.
    pub best_diff: Option<f64>,
    /// Blocks found by the herd.
    pub blocks_found: i64,
}

/// Every enabled miner with its summary, by name (odds and lottery figures not filled in:
/// [`build`] does that). Also for other processes, such as `shepherd miners list`.
pub fn miner_views(conn: &Connection, now: i64, stall_ms: i64) -> rusqlite::Result<Vec<MinerView>> {
    queries::miner_view_rows(conn, now, |r| {
        let link: String = r.get("link_state")?;
        let last_seen: Option<i64> = r.get("last_seen")?;
        let mut status = derive_status(&link, last_seen, now, stall_ms);
        let link_detail: Option<String> = r.get("link_detail")?;
        let evidence: Evidence = r
            .get::<_, Option<String>>("evidence_json")?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        let diagnosis = diagnosis::diagnose(&evidence, status, last_seen, now);
        // Boards that print no hashrate on their current screen still talk to their pool:
        // that is mining, not a stall.
        if status == Status::Stalled && diagnosis.verdict == Verdict::MiningUnreported {
            status = Status::Online;
        }
        let boot_at: Option<i64> = r.get("boot_at")?;
        let temperature: Option<f64> = r.get("temperature")?;
        let temperature_since: Option<i64> = r.get("temperature_since")?;
        let no_sensor = matches!((temperature, temperature_since),
            (Some(t), Some(since)) if (t - 53.0).abs() <= 0.5 && now - since >= NO_SENSOR_AFTER_MS);
        Ok(MinerView {
            id: r.get("id")?,
            name: r.get("name")?,
            port: r.get("port")?,
            kind: r.get("kind")?,
            status,
            status_detail: match status {
                Status::Stalled => Some("connected, but nothing received lately".into()),
                Status::NoData => Some("connected, waiting for the first line".into()),
                Status::Online if diagnosis.verdict == Verdict::Mining => None,
                Status::Online => Some(diagnosis.summary.clone()),
                _ => link_detail,
            },
            last_seen,
            hashrate_khs: r.get("hashrate_khs")?,
            hashrate_avg_10m: r.get("hashrate_avg_10m")?,
            hashrate_avg_1h: r.get("hashrate_avg_1h")?,
            hashrate_avg_24h: r.get("hashrate_avg_24h")?,
            shares: r.get("shares")?,
            accepted: r.get("accepted")?,
            rejected: r.get("rejected")?,
            best_diff: r.get("best_diff")?,
            best_diff_session: r.get("best_diff_session")?,
            blocks_found: r.get("blocks_found")?,
            temperature,
            temp_max_24h: r.get("temp_max_24h")?,
            // Counted from the boot we saw, so it runs on between summarizer passes.
            uptime_secs: match boot_at {
                Some(b) => Some((now - b).max(0) / 1000),
                None => r.get("uptime_secs")?,
            },
            time_mining_secs: r.get("time_mining_secs")?,
            stats_restored: r.get("stats_restored")?,
            shares_meaning: r.get("shares_meaning")?,
            blocks_reported: r.get("blocks_reported")?,
            temperature_no_sensor: no_sensor,
            firmware_family: r.get("firmware_family")?,
            display: r.get("display")?,
            reboots_last_hour: r.get("reboots_last_hour")?,
            restarts: r.get("restarts")?,
            pool: r.get("pool")?,
            firmware: r.get("firmware")?,
            lines_total: r.get("lines_total")?,
            lines_dropped: r.get("lines_dropped")?,
            lines_truncated: r.get("lines_truncated")?,
            shares_last_hour: r.get("shares_last_hour")?,
            odds: None,
            lottery: None,
            fleet: Default::default(),
            diagnosis,
        })
    })
}

/// Totals over `miners`.
pub fn totals(miners: &[MinerView]) -> HerdTotals {
    let mut t = HerdTotals {
        miners: miners.len(),
        ..HerdTotals::default()
    };
    for m in miners {
        if m.status == Status::Online {
            t.online += 1;
            t.hashrate_khs += m.hashrate_khs.unwrap_or(0.0);
        }
        t.hashrate_avg_24h += m.hashrate_avg_24h.unwrap_or(0.0);
        t.shares += m.shares;
        t.blocks_found += m.blocks_found;
        if let Some(d) = m.best_diff {
            t.best_diff = Some(t.best_diff.map_or(d, |b: f64| b.max(d)));
        }
    }
    t
}

/// The latest herd document as published, or none yet.
type Latest = Option<Arc<HerdData>>;

/// Makes the channel the herd is published on: one [`Publisher`] (the summarizer) and any
/// number of [`Feed`]s.
pub fn channel(pool: ReadPool, config: Arc<Config>, stats: Arc<IngestStats>) -> (Publisher, Feed) {
    let (tx, rx) = watch::channel(None);
    let source = Source {
        pool,
        config,
        stats,
    };
    (
        Publisher {
            tx,
            source: source.clone(),
            last: None,
        },
        Feed { rx, source },
    )
}

/// What a herd document is built from.
#[derive(Clone)]
struct Source {
    pool: ReadPool,
    config: Arc<Config>,
    stats: Arc<IngestStats>,
}

impl Source {
    fn build(&self, now: i64) -> Result<HerdData, DbError> {
        let ingest = self.stats.snapshot();
        self.pool.with(|c| build(c, &self.config, ingest, now))
    }
}

/// The summarizer's end of the channel.
pub struct Publisher {
    tx: watch::Sender<Latest>,
    source: Source,
    /// The last published document without its clock, to publish only what changed.
    last: Option<String>,
}

impl Publisher {
    /// Builds the document at `now` and publishes it when anything but the clock changed;
    /// true when it did. Blocking (reads the database).
    pub fn publish(&mut self, now: i64) -> Result<bool, DbError> {
        let doc = self.source.build(now)?;
        let print = fingerprint(&doc);
        if print.is_some() && print == self.last {
            return Ok(false);
        }
        self.last = print;
        self.tx.send_replace(Some(Arc::new(doc)));
        Ok(true)
    }
}

/// What says whether a document changed: all of it but `server_time`.
fn fingerprint(doc: &HerdData) -> Option<String> {
    let mut v = serde_json::to_value(doc).ok()?;
    if let Some(obj) = v.as_object_mut() {
        obj.remove("server_time");
    }
    Some(v.to_string())
}

/// A reader's end of the channel: the latest document, or a change to wait for.
#[derive(Clone)]
pub struct Feed {
    rx: watch::Receiver<Latest>,
    source: Source,
}

impl Feed {
    /// The latest published document, if one was published yet.
    pub fn latest(&self) -> Option<Arc<HerdData>> {
        self.rx.borrow().clone()
    }

    /// The latest document, or (in the first seconds after start, before the summarizer's
    /// first) one built now. Blocking when it builds: call it off the event loop.
    pub fn current(&self) -> Result<Arc<HerdData>, DbError> {
        match self.latest() {
            Some(doc) => Ok(doc),
            None => Ok(Arc::new(self.source.build(crate::clock::now_ms())?)),
        }
    }

    /// A receiver told of every published document (SSE).
    pub fn subscribe(&self) -> watch::Receiver<Latest> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_last_hour_counts_only_the_last_sixty_minutes() {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/x')",
            [],
        )
        .unwrap();
        let now_ms = 10_000_000_000;
        let now_s = now_ms / 1000;
        for (minute, shares) in [(now_s - 7200, 5), (now_s - 3000, 2), (now_s - 60, 1)] {
            c.execute(
                "INSERT INTO miner_minutes (miner_id, minute, shares, samples) VALUES (1, ?1, ?2, 1)",
                [minute, shares],
            )
            .unwrap();
        }
        let views = miner_views(&c, now_ms, 30_000).unwrap();
        assert_eq!(views[0].shares_last_hour, 3);
        assert_eq!(views[0].status, Status::Offline);
    }

    #[test]
    fn the_herd_is_published_once_per_change_and_read_before_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herd.db");
        let (writer, _) = crate::db::open_writer(&path).unwrap();
        let (mut publisher, feed) = channel(
            ReadPool::new(path),
            Arc::new(Config::default()),
            Arc::new(IngestStats::default()),
        );
        // Before the summarizer's first: nothing published, a reader builds its own.
        assert!(feed.latest().is_none());
        assert_eq!(feed.current().unwrap().miners.len(), 0);
        let mut rx = feed.subscribe();
        assert!(publisher.publish(1_000).unwrap());
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_ref().unwrap().server_time, 1_000);
        // Only the clock moved: nothing new is pushed.
        assert!(!publisher.publish(2_000).unwrap());
        assert!(!rx.has_changed().unwrap());
        assert_eq!(feed.latest().unwrap().server_time, 1_000);
        writer
            .execute(
                "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/x')",
                [],
            )
            .unwrap();
        assert!(publisher.publish(3_000).unwrap());
        let doc = feed.current().unwrap();
        assert_eq!((doc.server_time, doc.totals.miners), (3_000, 1));
        assert_eq!(doc.miners[0].name, "a");
    }

    #[test]
    fn a_quiet_board_with_live_pool_traffic_is_online_not_stalled() {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/x')",
            [],
        )
        .unwrap();
        let now = 10_000_000_000;
        let evidence = |traffic_at: i64| {
            let mut e = Evidence::default();
            e.observe(traffic_at, &crate::model::event::MinerEvent::NewJob);
            serde_json::to_string(&e).unwrap()
        };
        // Silent for 60 s (stall after 30 s), but a job came 60 s ago: still mining.
        c.execute(
            "INSERT INTO miner_summary (miner_id, link_state, last_seen, evidence_json, boot_at,
               temperature, temperature_since)
             VALUES (1, 'connected', ?1, ?2, ?3, 53.0, ?4)",
            rusqlite::params![
                now - 60_000,
                evidence(now - 60_000),
                now - 3_600_000,
                now - 3_600_000
            ],
        )
        .unwrap();
        let v = &miner_views(&c, now, 30_000).unwrap()[0];
        assert_eq!(v.status, Status::Online);
        assert_eq!(v.diagnosis.verdict, Verdict::MiningUnreported);
        assert!(v
            .status_detail
            .as_deref()
            .is_some_and(|d| d.contains("hashrate not reported")));
        assert_eq!(v.uptime_secs, Some(3600), "since the boot we saw");
        assert!(v.temperature_no_sensor, "a flat 53 °C for an hour");
        // Pool traffic too old: stalled after all.
        c.execute(
            "UPDATE miner_summary SET evidence_json = ?1",
            [evidence(now - 600_000)],
        )
        .unwrap();
        let v = &miner_views(&c, now, 30_000).unwrap()[0];
        assert_eq!(v.status, Status::Stalled);
    }
}
