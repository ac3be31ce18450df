//! "Why is it not mining?": the chain Wi-Fi → pool reachable → subscribed → authorized →
//! hashing → shares accepted, each link with the last line that proves (or breaks) it.
//!
//! Pure: [`Evidence`] is fed the parsed events of one miner (it lives in the summarizer's
//! [`MinerState`](crate::summary::MinerState) and is stored as JSON), and [`diagnose`] turns it
//! into an answer at a given time. The firmware never checks the pool's answer to
//! `mining.authorize` (stratum.cpp tx_mining_auth() "Don't parse here any answer") and hashes
//! on for nothing when the pool refuses the worker; this is where that is caught.

use serde::{Deserialize, Serialize};

use crate::model::event::MinerEvent;
use crate::model::status::Status;

/// A miner prints its `Completed` (or T3/SparkMiner) line every second (10 s for SparkMiner):
/// a report older than this no longer proves it is hashing.
pub const HASH_FRESH_MS: i64 = 30_000;

/// Pool traffic: a job (`mining.notify`) arrives at least with every network block and
/// usually every 30–60 s; the firmware's keep-alive fires after 30 s idle and it gives up on
/// a pool after 60–120 s (mining.cpp checkPoolInactivity()). Traffic younger than this proves
/// the pool link.
pub const POOL_FRESH_MS: i64 = 180_000;

/// One link of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Wi-Fi associated.
    Wifi,
    /// TCP connection to the pool.
    PoolReachable,
    /// `mining.subscribe` answered.
    Subscribed,
    /// `mining.authorize` accepted.
    Authorized,
    /// Hashing (a hashrate above zero).
    Hashing,
    /// The pool accepts shares.
    SharesAccepted,
}

/// Every link, in chain order.
pub const LINKS: [Link; 6] = [
    Link::Wifi,
    Link::PoolReachable,
    Link::Subscribed,
    Link::Authorized,
    Link::Hashing,
    Link::SharesAccepted,
];

impl Link {
    /// Words for a human.
    pub fn label(self) -> &'static str {
        match self {
            Link::Wifi => "Wi-Fi",
            Link::PoolReachable => "pool reachable",
            Link::Subscribed => "subscribed",
            Link::Authorized => "authorized",
            Link::Hashing => "hashing",
            Link::SharesAccepted => "shares accepted",
        }
    }

    fn index(self) -> usize {
        LINKS.iter().position(|l| *l == self).unwrap_or(0)
    }
}

/// A line seen at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    /// Unix ms.
    pub at: i64,
    /// Order of arrival: lines of one serial read share one timestamp.
    #[serde(default)]
    pub seq: u64,
    /// The line as parsed (rebuilt from the event: events do not keep the raw text).
    pub line: String,
}

/// The last line that proved a link and the last that broke it (with why).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkEvidence {
    /// Last proof that the link works.
    pub ok: Option<Proof>,
    /// Last proof that it does not.
    pub fail: Option<Proof>,
    /// Why it failed, in words.
    pub reason: Option<String>,
}

/// What one miner's lines said about each link since its last boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// One entry per [`LINKS`] element.
    pub links: [LinkEvidence; 6],
    /// When the setup portal opened (cleared by a Wi-Fi connection).
    pub setup_portal: Option<Proof>,
    /// Id of the `mining.authorize` request, to recognise the pool's answer to it.
    pub authorize_id: Option<i64>,
    /// The firmware's share counter last seen (a rise is a pool-accepted share from 1.8.0).
    pub shares_seen: Option<u64>,
    /// When the board last booted (ROM banner or "starting").
    pub boot: Option<Proof>,
    /// Last line of any pool traffic (job, difficulty, pool answer): proves mining goes on
    /// on boards that print no hashrate on their current screen.
    pub pool_traffic: Option<Proof>,
    /// Events observed (orders proofs that share a timestamp).
    #[serde(default)]
    pub seq: u64,
}

/// Arduino-ESP32 `wl_status_t` (WiFiType.h), as `[Error] - current status: %d` prints it
/// (wManager.cpp:440).
pub fn wifi_status_meaning(status: i32) -> &'static str {
    match status {
        0 => "idle (WL_IDLE_STATUS)",
        1 => "network not found (WL_NO_SSID_AVAIL)",
        2 => "scan completed (WL_SCAN_COMPLETED)",
        3 => "connected (WL_CONNECTED)",
        4 => "connection failed, wrong password? (WL_CONNECT_FAILED)",
        5 => "connection lost (WL_CONNECTION_LOST)",
        6 => "disconnected (WL_DISCONNECTED)",
        255 => "no Wi-Fi hardware (WL_NO_SHIELD)",
        _ => "unknown status",
    }
}

/// Stratum error codes (stratum V1 as pools use them; printed by stratum.cpp checkError()).
pub fn stratum_error_meaning(code: i64) -> &'static str {
    match code {
        20 => "other/unknown",
        21 => "job not found (stale)",
        22 => "duplicate share",
        23 => "low difficulty share",
        24 => "unauthorized worker",
        25 => "not subscribed",
        _ => "pool error",
    }
}

impl Evidence {
    fn mark(&mut self, link: Link, at: i64, line: String, ok: bool, reason: Option<String>) {
        let seq = self.seq;
        let e = &mut self.links[link.index()];
        let proof = Some(Proof { at, seq, line });
        if ok {
            e.ok = proof;
        } else {
            e.fail = proof;
            e.reason = reason;
        }
    }

    /// Like `mark`, for the once-a-second status flags: a failure already explained by a
    /// more telling line (`[Error] - current status: 5`) keeps that explanation.
    fn mark_flag(&mut self, link: Link, at: i64, line: String, ok: bool, reason: &str) {
        let e = &self.links[link.index()];
        let failed = match (&e.ok, &e.fail) {
            (Some(o), Some(f)) => (f.at, f.seq) > (o.at, o.seq),
            (None, Some(_)) => true,
            _ => false,
        };
        let reason = if !ok && failed {
            e.reason.clone()
        } else {
            Some(reason.to_owned())
        };
        self.mark(link, at, line, ok, reason);
    }

    fn traffic(&mut self, at: i64, line: &str) {
        self.pool_traffic = Some(Proof {
            at,
            seq: self.seq,
            line: line.to_owned(),
        });
    }

    /// The board booted at `at`: every link must be proved again.
    pub fn rebooted(&mut self, at: i64, line: String) {
        *self = Evidence {
            boot: Some(Proof {
                at,
                seq: self.seq,
                line,
            }),
            seq: self.seq,
            ..Evidence::default()
        };
    }

    /// Takes one event seen at `at` (Unix ms).
    pub fn observe(&mut self, at: i64, event: &MinerEvent) {
        use Link::*;
        use MinerEvent as E;
        self.seq += 1;
        let line = describe(event);
        match event {
            E::WifiConnected { .. } => {
                self.setup_portal = None;
                self.mark(Wifi, at, line, true, None);
            }
            E::WifiError { status } => {
                let why = format!("status {status}: {}", wifi_status_meaning(*status));
                self.mark(Wifi, at, line, false, Some(why));
            }
            E::WifiTimeout => self.mark(
                Wifi,
                at,
                line,
                false,
                Some("could not join the Wi-Fi in time; the firmware restarts".into()),
            ),
            E::SetupMode | E::ConfigButton => {
                self.setup_portal = Some(Proof {
                    at,
                    seq: self.seq,
                    line: line.clone(),
                });
                self.mark(
                    Wifi,
                    at,
                    line,
                    false,
                    Some("setup portal open (access point NerdMinerAP): configure it".into()),
                );
            }
            E::ConfigErased | E::ConfigMissing => {
                self.mark(
                    Wifi,
                    at,
                    line,
                    false,
                    Some("no configuration: the miner will open its setup portal".into()),
                );
            }
            E::MinerStatus {
                connected,
                subscribed,
                wifi,
                ..
            } => {
                // monitor in mining.cpp:1250, printed only in a second without hashes.
                self.mark_flag(Wifi, at, line.clone(), *wifi, "wificonnected>false");
                if *wifi {
                    self.mark_flag(
                        PoolReachable,
                        at,
                        line.clone(),
                        *connected,
                        "connected>false: no connection to the pool",
                    );
                }
                if *connected {
                    self.mark_flag(
                        Subscribed,
                        at,
                        line.clone(),
                        *subscribed,
                        "subscribed>false: the pool has not answered mining.subscribe",
                    );
                }
                self.mark_flag(Hashing, at, line, false, "no hashes in the last second");
            }
            E::PoolConnecting => {}
            E::PoolUnreachable { pool } => {
                let why = format!("cannot connect to {pool}");
                self.mark(PoolReachable, at, line, false, Some(why));
            }
            E::PoolTimeout => self.mark(
                PoolReachable,
                at,
                line,
                false,
                Some("no data from the pool; the firmware reconnects".into()),
            ),
            // An AxeOS miner answered over HTTP: it is on the Wi-Fi.
            E::FirmwareVersion { .. } => self.mark(Wifi, at, line, true, None),
            E::Subscribe { .. } => {
                // Sent only after the TCP connect succeeded (mining.cpp checkPoolConnection()).
                self.mark(Wifi, at, line.clone(), true, None);
                self.mark(PoolReachable, at, line, true, None);
            }
            E::Authorize { .. } => {
                // stratum.cpp:56 subscribe is id 1, :124 authorize the next id: 2.
                self.authorize_id = Some(2);
            }
            E::NewJob | E::PoolDifficulty(_) => {
                self.traffic(at, &line);
                self.mark(PoolReachable, at, line.clone(), true, None);
                self.mark(Subscribed, at, line, true, None);
            }
            E::PoolResponse { id, accepted } => {
                self.traffic(at, &line);
                self.mark(PoolReachable, at, line.clone(), true, None);
                if Some(*id) == self.authorize_id {
                    let why = "the pool refused mining.authorize: check the wallet address / worker name and the pool password".to_string();
                    self.mark(Authorized, at, line, *accepted, Some(why));
                } else if *id == 1 {
                    self.mark(
                        Subscribed,
                        at,
                        line,
                        *accepted,
                        Some("subscribe refused".into()),
                    );
                } else if *accepted {
                    // An answered submit: the worker is authorized.
                    self.mark(Authorized, at, line.clone(), true, None);
                }
            }
            E::StratumError { code, reason } => {
                self.traffic(at, &line);
                let why = format!("{} ({code}): {reason}", stratum_error_meaning(*code));
                match code {
                    24 => self.mark(Authorized, at, line, false, Some(why)),
                    25 => self.mark(Subscribed, at, line, false, Some(why)),
                    _ => self.mark(SharesAccepted, at, line, false, Some(why)),
                }
            }
            E::WorkAborted => self.mark(
                Subscribed,
                at,
                line,
                false,
                Some("the pool's subscribe answer was unusable".into()),
            ),
            E::ShareRejected { .. } => {
                self.traffic(at, &line);
                self.mark(
                    SharesAccepted,
                    at,
                    line,
                    false,
                    Some("the pool refused a share".into()),
                );
            }
            E::Progress {
                shares,
                hashrate_khs,
                ..
            }
            | E::CompactStatus {
                shares,
                hashrate_khs,
                ..
            } => self.hashing(at, line, *hashrate_khs, Some(*shares)),
            E::SparkStats {
                hashrate_khs,
                accepted,
                ..
            }
            | E::AxeOsStats {
                hashrate_khs,
                accepted,
                ..
            } => self.hashing(at, line, *hashrate_khs, Some(*accepted)),
            E::BlockFound => {
                self.mark(SharesAccepted, at, line, true, None);
            }
            _ => {}
        }
    }

    fn hashing(&mut self, at: i64, line: String, khs: f64, shares: Option<u64>) {
        let ok = khs > 0.0;
        self.mark(
            Link::Hashing,
            at,
            line.clone(),
            ok,
            Some("hashrate 0".into()),
        );
        if let Some(n) = shares {
            // From 1.8.0 the counter rises only when the pool accepts a share (mining.cpp
            // STRATUM_SUCCESS, `shares++`): a rise proves authorize and acceptance.
            if self.shares_seen.is_some_and(|s| n > s) {
                // An accepted share also proves the links before it (an AxeOS miner has no
                // other line that does).
                self.mark(Link::PoolReachable, at, line.clone(), true, None);
                self.mark(Link::Subscribed, at, line.clone(), true, None);
                self.mark(Link::SharesAccepted, at, line.clone(), true, None);
                self.mark(Link::Authorized, at, line, true, None);
            }
            self.shares_seen = Some(n);
        }
    }
}

/// The line an event was parsed from, rebuilt in the firmware's words (no secrets: the
/// authorize line names only the worker).
pub fn describe(event: &MinerEvent) -> String {
    use MinerEvent as E;
    match event {
        E::Progress {
            shares,
            khashes,
            hashrate_khs,
        } => format!(
            ">>> Completed {shares} share(s), {khashes} Khashes, avg. hashrate {hashrate_khs:.2} KH/s"
        ),
        E::CompactStatus {
            hashrate_khs,
            shares,
            best_diff,
        } => format!(">>> Hashrate: {hashrate_khs:.2} KH/s | Shares: {shares} | Best diff: {best_diff}"),
        E::SparkStats {
            hashrate_khs,
            accepted,
            answered,
            ..
        } => format!(
            "[STATS] Hashrate: {:.2} H/s | Shares: {accepted}/{answered}",
            hashrate_khs * 1000.0
        ),
        E::AxeOsStats {
            hashrate_khs,
            accepted,
            rejected,
            ..
        } => format!(
            "[axeos] hashRate {:.2} GH/s | shares {accepted} accepted, {rejected} rejected",
            hashrate_khs / 1e6
        ),
        E::MinerStatus {
            new_job,
            in_run,
            connected,
            subscribed,
            wifi,
        } => format!(
            ">>> [i] Miner: newJob>{new_job} / inRun>{in_run}) - Client: connected>{connected} / subscribed>{subscribed} / wificonnected>{wifi}"
        ),
        E::WifiConnected { ip } => format!("CONNECTED - Current ip: {ip}"),
        E::WifiError { status } => format!("[Error] - current status: {status}"),
        E::WifiTimeout => "failed to connect and hit timeout".into(),
        E::SetupMode => "Entered Configuration Mode".into(),
        E::ConfigButton => "Button pressed to force start config mode".into(),
        E::ConfigErased => "Erasing Config, restarting".into(),
        E::ConfigMissing => "SPIFS: No config file available!".into(),
        E::PoolUnreachable { pool } => format!("Imposible to connect to : {pool}"),
        E::PoolTimeout => {
            "Detected more than 2 min without data form stratum server. Closing socket and reopening...".into()
        }
        E::Subscribe { firmware } => format!(
            "Sending  : mining.subscribe (NerdMinerV2{})",
            firmware.as_deref().map(|f| format!("/{f}")).unwrap_or_default()
        ),
        E::Authorize { worker } => format!("Sending  : mining.authorize ({worker})"),
        E::FirmwareVersion { version } => format!("[axeos] version {version}"),
        E::NewJob => "Parsing Method [MINING NOTIFY]".into(),
        E::PoolDifficulty(d) => format!("difficulty: {d:.12}"),
        E::PoolResponse { id, accepted } => {
            format!("Receiving: {{\"id\":{id},\"result\":{accepted}}}")
        }
        E::StratumError { code, reason } => format!("ERROR: {code} | reason: {reason}"),
        E::WorkAborted => "[WORKER] >>>>>>>>> Work aborted".into(),
        E::ShareRejected { code } => format!("Refuse submition {code}"),
        E::BlockFound => "CONGRATULATIONS! Valid block found".into(),
        E::Boot { reset_reason } => format!("rst:{reset_reason}"),
        E::Starting => "NerdMiner v2 starting......".into(),
        E::Crash { detail } => detail.clone(),
        E::Brownout => "Brownout detector was triggered".into(),
        E::Watchdog => "task_wdt: Task watchdog got triggered".into(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_owned)))
            .unwrap_or_default(),
    }
}

/// The answer to "why is it not mining?".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Hashing (a fresh hashrate report) and nothing upstream broken.
    Mining,
    /// No hashrate line lately, but pool traffic goes on: boards that print nothing on some
    /// screens (M5StickC, S3 dongle with backlight off, T-QT/Spotpear clock screen).
    MiningUnreported,
    /// Hashing, but the pool refuses the worker: every hash is wasted.
    WorkerRejected,
    /// The Wi-Fi setup portal is open.
    SetupPortal,
    /// Wi-Fi does not connect.
    NoWifi,
    /// The pool cannot be reached.
    PoolUnreachable,
    /// Connected, but not subscribed.
    NotSubscribed,
    /// Everything upstream fine (or unknown), no hashes.
    NotHashing,
    /// Booted moments ago; the chain is being established.
    Starting,
    /// The serial port is gone or unusable: nothing can be said from its lines.
    Offline,
    /// The port is open and nothing arrives.
    Silent,
    /// Not enough lines to say.
    #[default]
    Unknown,
}

/// One link as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkView {
    /// Which link.
    pub link: Link,
    /// `ok`, `failed`, `stale` (proved, but long ago) or `unknown`.
    pub state: &'static str,
    /// The last line that decides the state.
    pub line: Option<String>,
    /// When it came (Unix ms).
    pub at: Option<i64>,
    /// Its age in seconds.
    pub age_secs: Option<i64>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// The answer with its reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The verdict.
    pub verdict: Verdict,
    /// One sentence for a human.
    pub summary: String,
    /// Which signal the verdict rests on (with its age).
    pub basis: String,
    /// The chain, in order.
    pub links: Vec<LinkView>,
}

fn age(now: i64, at: i64) -> i64 {
    (now - at).max(0) / 1000
}

/// How fresh a proof must be for the link to count as working now (None: any age).
fn fresh_for(link: Link) -> Option<i64> {
    match link {
        Link::Hashing => Some(HASH_FRESH_MS),
        Link::PoolReachable => Some(POOL_FRESH_MS),
        _ => None,
    }
}

fn link_view(e: &LinkEvidence, link: Link, now: i64) -> LinkView {
    let newer_fail = match (&e.ok, &e.fail) {
        (Some(ok), Some(fail)) => (fail.at, fail.seq) > (ok.at, ok.seq),
        (None, Some(_)) => true,
        _ => false,
    };
    let (state, proof, reason) = if newer_fail {
        ("failed", e.fail.as_ref(), e.reason.clone())
    } else if let Some(ok) = &e.ok {
        let stale = fresh_for(link).is_some_and(|f| now - ok.at > f);
        (if stale { "stale" } else { "ok" }, Some(ok), None)
    } else {
        ("unknown", None, None)
    };
    LinkView {
        link,
        state,
        line: proof.map(|p| p.line.clone()),
        at: proof.map(|p| p.at),
        age_secs: proof.map(|p| age(now, p.at)),
        reason,
    }
}

/// The answer at `now` for a miner whose serial status is `status`.
pub fn diagnose(e: &Evidence, status: Status, last_seen: Option<i64>, now: i64) -> Diagnosis {
    let links: Vec<LinkView> = LINKS
        .iter()
        .zip(e.links.iter())
        .map(|(l, ev)| link_view(ev, *l, now))
        .collect();
    let (verdict, summary, basis) = verdict(e, &links, status, last_seen, now);
    Diagnosis {
        verdict,
        summary,
        basis,
        links,
    }
}

fn said(v: &LinkView) -> String {
    match (&v.line, v.age_secs) {
        (Some(l), Some(a)) => format!("\"{l}\" {a} s ago"),
        _ => "no line yet".into(),
    }
}

fn verdict(
    e: &Evidence,
    links: &[LinkView],
    status: Status,
    last_seen: Option<i64>,
    now: i64,
) -> (Verdict, String, String) {
    let seen = last_seen.map_or_else(
        || "nothing received".to_string(),
        |t| format!("last line {} s ago", age(now, t)),
    );
    match status {
        Status::Offline | Status::Error => {
            return (
                Verdict::Offline,
                "the serial port is not available: nothing can be told from here".into(),
                format!("serial port; {seen}"),
            )
        }
        Status::NoData => {
            return (
                Verdict::Silent,
                "the port is open but the miner prints nothing (wrong baud, or hung)".into(),
                "serial port: no line yet".into(),
            )
        }
        _ => {}
    }
    let get = |l: Link| &links[l.index()];
    let failed = |l: Link| get(l).state == "failed";
    let hashing = get(Link::Hashing);
    let mining_now = hashing.state == "ok";
    if failed(Link::Authorized) {
        let a = get(Link::Authorized);
        let reason = a.reason.clone().unwrap_or_default();
        let what = if mining_now {
            "hashes, but the pool rejects the worker: every hash is wasted"
        } else {
            "the pool rejects the worker"
        };
        return (
            Verdict::WorkerRejected,
            format!("{what} — {reason}"),
            said(a),
        );
    }
    if let Some(p) = &e.setup_portal {
        if !mining_now {
            return (
                Verdict::SetupPortal,
                "the Wi-Fi setup portal is open: join the NerdMinerAP network to configure it"
                    .into(),
                format!("\"{}\" {} s ago", p.line, age(now, p.at)),
            );
        }
    }
    for (link, v, text) in [
        (Link::Wifi, Verdict::NoWifi, "Wi-Fi does not connect"),
        (
            Link::PoolReachable,
            Verdict::PoolUnreachable,
            "the pool cannot be reached",
        ),
        (
            Link::Subscribed,
            Verdict::NotSubscribed,
            "connected, but the pool has not subscribed the miner",
        ),
    ] {
        if failed(link) && !mining_now {
            let l = get(link);
            let reason = l.reason.clone().unwrap_or_default();
            return (v, format!("{text}: {reason}"), said(l));
        }
    }
    if mining_now {
        let shares = get(Link::SharesAccepted);
        let extra = if shares.state == "failed" {
            format!(
                " (last share refused: {})",
                shares.reason.clone().unwrap_or_default()
            )
        } else {
            String::new()
        };
        return (
            Verdict::Mining,
            format!("mining{extra}"),
            format!("hashrate line: {}", said(hashing)),
        );
    }
    if let Some(t) = e
        .pool_traffic
        .as_ref()
        .filter(|t| now - t.at <= POOL_FRESH_MS)
    {
        if hashing.state != "failed" {
            return (
                Verdict::MiningUnreported,
                "mining, hashrate not reported (this board prints no hashrate on its current screen)".into(),
                format!("pool traffic: \"{}\" {} s ago", t.line, age(now, t.at)),
            );
        }
    }
    if let Some(b) = e.boot.as_ref().filter(|b| now - b.at < 60_000) {
        return (
            Verdict::Starting,
            "booted moments ago; connecting".into(),
            format!("\"{}\" {} s ago", b.line, age(now, b.at)),
        );
    }
    if hashing.state == "failed" {
        return (
            Verdict::NotHashing,
            format!(
                "not hashing: {}",
                hashing.reason.clone().unwrap_or_default()
            ),
            said(hashing),
        );
    }
    if hashing.state == "stale" {
        return (
            Verdict::NotHashing,
            "no hashrate reported lately and no pool traffic".into(),
            format!("hashrate line: {}; {seen}", said(hashing)),
        );
    }
    (
        Verdict::Unknown,
        "not enough lines yet to tell".into(),
        seen,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use MinerEvent as E;

    const NOW: i64 = 1_000_000_000;

    fn feed(events: &[(i64, E)]) -> Evidence {
        let mut e = Evidence::default();
        for (at, ev) in events {
            e.observe(*at, ev);
        }
        e
    }

    fn progress(shares: u64, khs: f64) -> E {
        E::Progress {
            shares,
            khashes: 1,
            hashrate_khs: khs,
        }
    }

    #[test]
    fn a_hashing_miner_is_mining_with_its_line_as_basis() {
        let e = feed(&[
            (
                NOW - 60_000,
                E::WifiConnected {
                    ip: "10.0.0.2".into(),
                },
            ),
            (NOW - 59_000, E::Subscribe { firmware: None }),
            (NOW - 58_000, E::Authorize { worker: "w".into() }),
            (NOW - 57_000, E::NewJob),
            (NOW - 2_000, progress(0, 50.0)),
        ]);
        let d = diagnose(&e, Status::Online, Some(NOW - 1000), NOW);
        assert_eq!(d.verdict, Verdict::Mining);
        assert!(d.basis.contains("Completed 0 share(s)"), "{}", d.basis);
        assert!(d.basis.contains("2 s ago"), "{}", d.basis);
        assert_eq!(d.links[0].state, "ok");
        assert_eq!(d.links[3].state, "unknown", "authorize not answered yet");
    }

    #[test]
    fn an_axeos_miner_is_proved_by_its_readings_never_by_a_nerdminer_line() {
        let axe = |accepted| E::AxeOsStats {
            hashrate_khs: 480e6,
            accepted,
            rejected: 0,
            best_diff: None,
        };
        let e = feed(&[
            (
                NOW - 20_000,
                E::FirmwareVersion {
                    version: "v2.12.0".into(),
                },
            ),
            (NOW - 20_000, axe(100)),
            (NOW - 10_000, axe(104)),
        ]);
        let d = diagnose(&e, Status::Online, Some(NOW - 10_000), NOW);
        assert_eq!(d.verdict, Verdict::Mining);
        let states: Vec<&str> = d.links.iter().map(|l| l.state).collect();
        assert_eq!(states, ["ok"; 6], "{d:?}");
        assert_eq!(d.links[0].line.as_deref(), Some("[axeos] version v2.12.0"));
        for l in &d.links[1..] {
            let line = l.line.as_deref().unwrap_or_default();
            assert!(line.starts_with("[axeos] hashRate 480.00 GH/s"), "{l:?}");
        }
    }

    #[test]
    fn a_refused_authorize_is_worker_rejected_although_hashing() {
        // stratum.cpp:144 echoes the answer, checkError() prints ERROR: 24; mining goes on.
        let e = feed(&[
            (
                NOW - 10_000,
                E::Authorize {
                    worker: "bad".into(),
                },
            ),
            (
                NOW - 9_000,
                E::PoolResponse {
                    id: 2,
                    accepted: false,
                },
            ),
            (
                NOW - 9_000,
                E::StratumError {
                    code: 24,
                    reason: "Unauthorized worker".into(),
                },
            ),
            (NOW - 1_000, progress(0, 55.0)),
        ]);
        let d = diagnose(&e, Status::Online, Some(NOW), NOW);
        assert_eq!(d.verdict, Verdict::WorkerRejected);
        assert!(d.summary.contains("Unauthorized worker"), "{}", d.summary);
        assert!(d.summary.contains("wasted"), "{}", d.summary);
    }

    #[test]
    fn wifi_error_says_what_the_status_means() {
        let e = feed(&[(NOW - 5_000, E::WifiError { status: 1 })]);
        let d = diagnose(&e, Status::Online, Some(NOW), NOW);
        assert_eq!(d.verdict, Verdict::NoWifi);
        assert!(d.summary.contains("network not found"), "{}", d.summary);
        // ...and it recovers with the next connection.
        let mut e = e;
        e.observe(
            NOW - 1000,
            &E::WifiConnected {
                ip: "1.2.3.4".into(),
            },
        );
        e.observe(NOW - 500, &progress(0, 40.0));
        assert_eq!(
            diagnose(&e, Status::Online, Some(NOW), NOW).verdict,
            Verdict::Mining
        );
    }

    #[test]
    fn pool_traffic_without_hashrate_is_mining_unreported() {
        let e = feed(&[
            (NOW - 600_000, progress(0, 50.0)),
            (NOW - 20_000, E::NewJob),
        ]);
        let d = diagnose(&e, Status::Online, Some(NOW - 20_000), NOW);
        assert_eq!(d.verdict, Verdict::MiningUnreported);
        assert!(d.basis.starts_with("pool traffic"), "{}", d.basis);
        // Without the traffic it is not mining.
        let e = feed(&[(NOW - 600_000, progress(0, 50.0))]);
        let d = diagnose(&e, Status::Online, Some(NOW - 1000), NOW);
        assert_eq!(d.verdict, Verdict::NotHashing);
    }

    #[test]
    fn setup_portal_and_offline() {
        let e = feed(&[(NOW - 1_000, E::SetupMode)]);
        assert_eq!(
            diagnose(&e, Status::Online, Some(NOW), NOW).verdict,
            Verdict::SetupPortal
        );
        assert_eq!(
            diagnose(&e, Status::Offline, Some(NOW), NOW).verdict,
            Verdict::Offline
        );
    }

    #[test]
    fn zero_hash_status_line_names_the_broken_link() {
        // mining.cpp:1250, V1.8.x: connected / subscribed / wificonnected carry information.
        let e = feed(&[(
            NOW - 1000,
            E::MinerStatus {
                new_job: true,
                in_run: false,
                connected: false,
                subscribed: false,
                wifi: true,
            },
        )]);
        let d = diagnose(&e, Status::Online, Some(NOW), NOW);
        assert_eq!(d.verdict, Verdict::PoolUnreachable);
        assert_eq!(d.links[0].state, "ok");
    }

    #[test]
    fn a_share_counter_rise_proves_acceptance() {
        let e = feed(&[
            (NOW - 3000, progress(4, 50.0)),
            (NOW - 2000, progress(5, 50.0)),
        ]);
        let d = diagnose(&e, Status::Online, Some(NOW), NOW);
        assert_eq!(d.links[5].state, "ok");
        assert_eq!(d.links[3].state, "ok");
    }

    #[test]
    fn lines_of_one_read_share_a_timestamp_and_keep_their_order() {
        let e = feed(&[
            (
                NOW,
                E::WifiConnected {
                    ip: "1.2.3.4".into(),
                },
            ),
            (NOW, E::WifiError { status: 5 }),
        ]);
        assert_eq!(
            diagnose(&e, Status::Online, Some(NOW), NOW).verdict,
            Verdict::NoWifi
        );
    }

    #[test]
    fn evidence_round_trips_through_json() {
        let e = feed(&[(1, E::NewJob), (2, E::WifiError { status: 5 })]);
        let back: Evidence = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
