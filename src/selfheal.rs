//! Self-healing (opt-in, `[self_heal]`): a miner stalled or hung for `after_minutes` gets a
//! reset through its serial lines (a RESET command its own reader runs); if it is still stuck
//! at the next chance, and its hub switches port power, a power cycle with `uhubctl`. At most
//! one action per `min_interval_minutes` and `max_per_day` a day per miner; never while a
//! configuration write is queued or running on it. Every action is a RESET row (so it is an
//! entry in the miner's incident) and a warning in the log.
//!
//! [`plan`] is the pure decision; [`tick`] reads the database and queues resets; [`uhubctl`]
//! finds and runs the tool.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use serde_json::json;

use crate::config::SelfHealConfig;
use crate::db::incidents::{self as sql, Filter, RESET_COMMAND};
use crate::incidents::IncidentKind;

/// The reason self-healing writes in its RESET rows' payload (prefix).
pub const REASON: &str = "self-healing";

/// What to do about one miner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Reset through the serial lines.
    Reset,
    /// Power cycle port `port` of hub `hub` (a uhubctl location like `1-1.3`).
    PowerCycle {
        /// Hub location.
        hub: String,
        /// Port on it.
        port: u32,
    },
}

/// One stuck miner as [`plan`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stuck {
    /// Which miner.
    pub miner_id: i64,
    /// Since when it has been stalled or hung (Unix ms).
    pub since: i64,
    /// A SET_CONFIG is pending or running on it.
    pub writing: bool,
    /// When self-healing acted on it lately (Unix ms), any order.
    pub acted: Vec<i64>,
    /// Hub and port it is on, when that hub switches port power and uhubctl is there.
    pub power: Option<(String, u32)>,
}

/// Why self-healing leaves a stuck miner alone for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Not stuck for `after_minutes` yet.
    Delay,
    /// A configuration write is queued or running on it.
    Writing,
    /// It acted on this miner less than `min_interval_minutes` ago; may again at this time.
    Interval(i64),
    /// `max_per_day` actions in the last 24 h.
    DayLimit,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Delay => write!(f, "not stuck long enough yet"),
            Wait::Writing => write!(f, "a configuration write is on"),
            Wait::Interval(at) => write!(
                f,
                "rate limit: acted lately, may again in {} min",
                ((at - crate::clock::now_ms()).max(0) + 59_999) / 60_000
            ),
            Wait::DayLimit => write!(f, "rate limit: the most actions a day reached"),
        }
    }
}

/// What to do about `s` at `now`, within the limits of `cfg`; `None` to wait.
pub fn plan(now: i64, cfg: &SelfHealConfig, s: &Stuck) -> Option<Action> {
    decide(now, cfg, s).ok()
}

/// Like [`plan`], saying why it waits.
pub fn decide(now: i64, cfg: &SelfHealConfig, s: &Stuck) -> Result<Action, Wait> {
    let min = 60_000;
    if s.writing {
        return Err(Wait::Writing);
    }
    if now - s.since < cfg.after_minutes as i64 * min {
        return Err(Wait::Delay);
    }
    let today = s.acted.iter().filter(|&&t| now - t < 86_400_000).count();
    if today >= cfg.max_per_day as usize {
        return Err(Wait::DayLimit);
    }
    let interval = cfg.min_interval_minutes as i64 * min;
    if let Some(last) = s.acted.iter().copied().max().filter(|t| now - t < interval) {
        return Err(Wait::Interval(last + interval));
    }
    // A reset already tried on this stuck spell did not help: power, where the hub can.
    let tried = s.acted.iter().any(|&t| t >= s.since);
    match (&s.power, tried && cfg.power_cycle) {
        (Some((hub, port)), true) => Ok(Action::PowerCycle {
            hub: hub.clone(),
            port: *port,
        }),
        _ => Ok(Action::Reset),
    }
}

/// Stuck miners read from the database: those with an open stalled incident (or offline while
/// connected but silent: hung), with their recent self-healing actions and whether a write is
/// on. `power_of(miner_id)` says where to power cycle it, if anywhere.
pub fn stuck(
    conn: &Connection,
    now: i64,
    power_of: &dyn Fn(i64) -> Option<(String, u32)>,
) -> rusqlite::Result<Vec<Stuck>> {
    let open = Filter {
        open: Some(true),
        ..Filter::default()
    };
    let mut out = Vec::new();
    for row in sql::list(conn, now, &open, 10_000)? {
        let e = &row.episode;
        let hung = e.kind == IncidentKind::Offline && e.cause.ends_with("connected but silent");
        if e.kind != IncidentKind::Stalled && !hung {
            continue;
        }
        if out.iter().any(|s: &Stuck| s.miner_id == e.miner_id) {
            continue;
        }
        let mut acted = conn.prepare_cached(
            "SELECT created_at FROM miner_commands WHERE miner_id = ?1 AND command = ?2
               AND created_at >= ?3 AND payload LIKE ?4",
        )?;
        let acted = acted
            .query_map(
                params![
                    e.miner_id,
                    RESET_COMMAND,
                    now - 86_400_000,
                    format!("%\"{REASON}%")
                ],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        let writing: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM miner_commands WHERE miner_id = ?1
               AND command = 'SET_CONFIG' AND status IN ('pending', 'running'))",
            [e.miner_id],
            |r| r.get(0),
        )?;
        out.push(Stuck {
            miner_id: e.miner_id,
            since: e.start,
            writing,
            acted,
            power: power_of(e.miner_id),
        });
    }
    Ok(out)
}

/// Records a self-healing action as a RESET row: pending for a reset (the miner's reader runs
/// it), finished for a power cycle (done here) with `outcome`. Returns the row id.
pub fn record(
    conn: &Connection,
    now: i64,
    miner_id: i64,
    action: &Action,
    outcome: Option<Result<String, String>>,
) -> rusqlite::Result<i64> {
    let (reason, status, detail) = match (action, outcome) {
        (Action::Reset, _) => (
            format!("{REASON}: serial reset of a stuck miner"),
            "pending",
            "queued: waiting for the miner's reader to take it".to_owned(),
        ),
        (Action::PowerCycle { hub, port }, outcome) => {
            let reason = format!("{REASON}: power cycle of hub {hub} port {port}");
            match outcome {
                Some(Ok(d)) => (reason, "complete", d),
                Some(Err(e)) => (reason, "error", e),
                None => (reason, "error", "not run".to_owned()),
            }
        }
    };
    let finished = (status != "pending").then_some(now);
    conn.execute(
        "INSERT INTO miner_commands (miner_id, command, payload, status, detail, created_at,
                                     started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            miner_id,
            RESET_COMMAND,
            json!({ "reason": reason }).to_string(),
            status,
            detail,
            now,
            finished
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// `uhubctl`: per-port power switching on hubs that support it.
pub mod uhubctl {
    use super::*;

    /// The `uhubctl` program on `path` (a PATH-style list), if installed.
    pub fn find(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
        let path = path?;
        std::env::split_paths(path)
            .map(|d| d.join("uhubctl"))
            .find(|p| is_executable(p))
    }

    fn is_executable(p: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }

    /// How a hub switches its ports' power (uhubctl's tag at the end of the hub line, from the
    /// hub descriptor's wHubCharacteristics).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Switching {
        /// `ppps`: per port. The only kind self-healing power cycles.
        PerPort,
        /// `ganged`: all ports at once (cycling one would cycle every miner on the hub).
        Ganged,
        /// `nops`: no power switching.
        None,
    }

    /// One port line: `  Port 2: 0503 power highspeed enable connect [1a86:7523 USB Serial]`.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
    pub struct PortStatus {
        /// Port number on the hub.
        pub port: u32,
        /// Powered now (`power` in the flags; `off` when switched off).
        pub powered: bool,
        /// Something is plugged in (`connect`).
        pub connected: bool,
        /// What is plugged in, as uhubctl describes it (`vid:pid vendor product serial`).
        pub device: Option<String>,
    }

    /// One hub as `uhubctl` without arguments lists it.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
    pub struct Hub {
        /// Its location, as `-l` takes it and as sysfs names it (`1-1.3`; a root hub: `1`).
        pub location: String,
        /// What is between the brackets (`2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps`).
        pub description: String,
        /// How it switches power.
        pub switching: Switching,
        /// Its ports.
        pub ports: Vec<PortStatus>,
    }

    /// Parses what `uhubctl` prints without arguments: `Current status for hub LOCATION
    /// [DESCRIPTION]` lines, each followed by `  Port N: STATUS flags… [device]` lines
    /// (uhubctl.c `print_port_status`). uhubctl 2.4 and later end the description with
    /// `ppps`, `ganged` or `nops`; older versions list only hubs that switch per port, without
    /// a tag. Anything else (warnings, blank lines) is skipped.
    pub fn parse(text: &str) -> Vec<Hub> {
        let mut hubs: Vec<Hub> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("Current status for hub ") {
                let (location, desc) = rest.split_once(' ').unwrap_or((rest, ""));
                let description = desc
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let tag = description.rsplit(',').next().unwrap_or("").trim();
                let switching = match tag {
                    "ganged" => Switching::Ganged,
                    "nops" => Switching::None,
                    _ => Switching::PerPort,
                };
                hubs.push(Hub {
                    location: location.to_owned(),
                    description,
                    switching,
                    ports: Vec::new(),
                });
                continue;
            }
            let Some(hub) = hubs.last_mut() else { continue };
            let Some(rest) = line.trim_start().strip_prefix("Port ") else {
                continue;
            };
            let Some((num, status)) = rest.split_once(':') else {
                continue;
            };
            let Ok(port) = num.trim().parse() else {
                continue;
            };
            let (flags, device) = match status.split_once('[') {
                Some((f, d)) => (f, Some(d.trim().trim_end_matches(']').to_owned())),
                None => (status, None),
            };
            let flags: Vec<&str> = flags.split_whitespace().skip(1).collect();
            hub.ports.push(PortStatus {
                port,
                powered: flags.contains(&"power"),
                connected: flags.contains(&"connect"),
                device,
            });
        }
        hubs
    }

    /// Whether port `port` of hub `location` can be power cycled on its own.
    pub fn switchable(hubs: &[Hub], location: &str, port: u32) -> bool {
        hubs.iter().any(|h| {
            h.location == location
                && h.switching == Switching::PerPort
                && (h.ports.is_empty() || h.ports.iter().any(|p| p.port == port))
        })
    }

    /// Runs `program` without arguments (it only lists) and parses what it prints.
    pub fn list(program: &Path) -> Result<Vec<Hub>, String> {
        let out = std::process::Command::new(program)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let hubs = parse(&String::from_utf8_lossy(&out.stdout));
        if hubs.is_empty() && !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(format!(
                "{} failed ({}): {err} — may shepherd use it (a udev rule for the hub, or root)?",
                program.display(),
                out.status
            ));
        }
        Ok(hubs)
    }

    /// The arguments for a power cycle of `port` on hub `hub`.
    pub fn cycle_args(hub: &str, port: u32) -> Vec<String> {
        vec![
            "-l".into(),
            hub.into(),
            "-p".into(),
            port.to_string(),
            "-a".into(),
            "cycle".into(),
            "-d".into(),
            "3".into(),
        ]
    }

    /// Runs a power cycle; its output on success, what went wrong (and what to do) otherwise.
    pub fn cycle(program: &Path, hub: &str, port: u32) -> Result<String, String> {
        let out = std::process::Command::new(program)
            .args(cycle_args(hub, port))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() {
            Ok(format!("uhubctl power cycled hub {hub} port {port}"))
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err(format!(
                "uhubctl failed ({}): {} — does this hub switch port power, and may shepherd use \
                 it (udev rule or root)?",
                out.status,
                if err.is_empty() { text } else { err }
            ))
        }
    }
}

/// Runs `action` (a power cycle runs `program` now; a reset is left to the miner's reader).
fn run(action: &Action, program: Option<&Path>) -> Option<Result<String, String>> {
    match (action, program) {
        (Action::PowerCycle { hub, port }, Some(p)) => Some(uhubctl::cycle(p, hub, *port)),
        _ => None,
    }
}

/// Where to power cycle the miner on `port` (its tty or by-id link): the hub it is plugged
/// into and its port there, from sysfs; `None` on a root port or where sysfs cannot tell.
pub fn power_location(port: &str) -> Option<(String, u32)> {
    use crate::discovery::portmap;
    let scan = portmap::scan_root(&portmap::root());
    let placed = scan
        .devices
        .iter()
        .find(|p| portmap::same_port(port, &p.device))?;
    let hub = placed
        .path
        .parent()
        .map_or_else(|| placed.path.bus.to_string(), |p| p.to_string());
    Some((hub, placed.path.port()))
}

/// What self-healing knows and did lately, for the ports page and `GET /api/ports`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// `[self_heal] enabled`.
    pub enabled: bool,
    /// The uhubctl it runs, if found (and power cycles are allowed).
    pub uhubctl: Option<String>,
    /// The hubs uhubctl listed last (None: not asked yet). Asked at start, and again in a
    /// round where a stuck miner sits on a hub the list does not have (plugged in since).
    pub hubs: Option<Vec<uhubctl::Hub>>,
    /// When uhubctl was last asked (Unix ms).
    pub hubs_listed_at: Option<i64>,
    /// Why the list is missing, when it was asked for and failed.
    pub hubs_error: Option<String>,
    /// Rounds run since the start.
    pub rounds: u64,
    /// Stuck miners left alone in the last round, and why.
    pub waiting: Vec<(String, String)>,
}

/// The [`Report`], shared between the actor and the web pages.
#[derive(Debug, Clone, Default)]
pub struct Status(std::sync::Arc<std::sync::Mutex<Report>>);

impl Status {
    /// A copy of the report now.
    pub fn report(&self) -> Report {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Report)) {
        if let Ok(mut r) = self.0.lock() {
            f(&mut r);
        }
    }

    /// Whether uhubctl's last list has hub `hub`.
    fn knows_hub(&self, hub: &str) -> bool {
        self.0.lock().is_ok_and(|r| {
            r.hubs
                .as_ref()
                .is_some_and(|hubs| hubs.iter().any(|h| h.location == hub))
        })
    }

    /// Where a miner on `location` can be power cycled: its hub and port, when uhubctl listed
    /// that hub as switching each port on its own.
    fn switchable(&self, location: Option<(String, u32)>) -> Option<(String, u32)> {
        let (hub, port) = location?;
        let r = self.0.lock().ok()?;
        uhubctl::switchable(r.hubs.as_deref()?, &hub, port).then_some((hub, port))
    }
}

/// One line for the log and the alert: what was done to whom, and how it went.
pub fn describe(name: &str, action: &Action, outcome: Option<&Result<String, String>>) -> String {
    match (action, outcome) {
        (Action::Reset, _) => {
            format!("self-healing: {name} is stuck; a reset through its serial lines is queued")
        }
        (Action::PowerCycle { hub, port }, Some(Ok(_))) => {
            format!("self-healing: {name} was still stuck; power cycled hub {hub} port {port}")
        }
        (Action::PowerCycle { hub, port }, Some(Err(e))) => {
            format!("self-healing: power cycle of {name} (hub {hub} port {port}) failed: {e}")
        }
        (Action::PowerCycle { hub, port }, None) => {
            format!("self-healing: power cycle of {name} (hub {hub} port {port}) not run")
        }
    }
}

/// Runs self-healing rounds every `check_secs` while `[self_heal] enabled`.
pub struct SelfHealActor {
    cfg: SelfHealConfig,
    pool: crate::db::ReadPool,
    db: actix::Addr<crate::db::DbActor>,
    supervisor: actix::Addr<crate::supervisor::Supervisor>,
    alerts: actix::Addr<crate::alerts::AlertActor>,
    program: Option<PathBuf>,
    status: Status,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SelfHealActor {
    /// Finds uhubctl (`[self_heal] uhubctl`, else on PATH) and says what it found (the README
    /// explains the package); `status` is where it reports.
    pub fn new(
        cfg: SelfHealConfig,
        pool: crate::db::ReadPool,
        db: actix::Addr<crate::db::DbActor>,
        supervisor: actix::Addr<crate::supervisor::Supervisor>,
        alerts: actix::Addr<crate::alerts::AlertActor>,
        status: Status,
    ) -> Self {
        let program = if cfg.uhubctl.is_empty() {
            uhubctl::find(std::env::var_os("PATH").as_deref())
        } else {
            Some(PathBuf::from(&cfg.uhubctl))
        };
        match (&program, cfg.power_cycle) {
            (Some(p), true) => tracing::info!("self-healing on; power cycles with {}", p.display()),
            (None, true) => tracing::info!(
                "self-healing on, serial resets only: uhubctl is not installed (apt install \
                 uhubctl) for power cycles on hubs that switch port power"
            ),
            (_, false) => {
                tracing::info!("self-healing on, serial resets only (power_cycle = false)")
            }
        }
        let program = program.filter(|_| cfg.power_cycle);
        status.update(|r| {
            r.enabled = true;
            r.uhubctl = program.as_ref().map(|p| p.display().to_string());
        });
        Self {
            cfg,
            pool,
            db,
            supervisor,
            alerts,
            program,
            status,
            busy: Default::default(),
        }
    }

    /// Asks uhubctl which hubs switch port power, on a thread of its own.
    fn check_hubs(&self) {
        let Some(program) = self.program.clone() else {
            return;
        };
        let status = self.status.clone();
        let spawned = std::thread::Builder::new()
            .name("uhubctl".into())
            .spawn(move || list_hubs(&program, &status));
        if let Err(e) = spawned {
            tracing::warn!("cannot ask uhubctl about the hubs: {e}");
        }
    }

    /// One round on a thread of its own (reads, a power cycle's seconds, then the records).
    fn round(&self) {
        use std::sync::atomic::Ordering;
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cfg, pool, db, sup) = (
            self.cfg.clone(),
            self.pool.clone(),
            self.db.clone(),
            self.supervisor.clone(),
        );
        let (program, busy, status) =
            (self.program.clone(), self.busy.clone(), self.status.clone());
        let alerts = self.alerts.clone();
        let spawned = std::thread::Builder::new()
            .name("self-heal".into())
            .spawn(move || {
                let now = crate::clock::now_ms();
                type Row = (i64, String, String);
                let ports = |c: &Connection| -> rusqlite::Result<Vec<Row>> {
                    let mut s = c.prepare_cached("SELECT id, port, name FROM miners")?;
                    let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect()
                };
                // uhubctl is asked again at most once a round, for a hub plugged in since.
                let relisted = std::cell::Cell::new(false);
                let read = pool.with(|c| {
                    let ports = ports(c)?;
                    let power_of = |id: i64| {
                        let program = program.as_ref()?;
                        let port = ports.iter().find(|(m, _, _)| *m == id)?;
                        let location = power_location(&port.1)?;
                        if !relisted.get() && !status.knows_hub(&location.0) {
                            relisted.set(true);
                            list_hubs(program, &status);
                        }
                        status.switchable(Some(location))
                    };
                    Ok((stuck(c, now, &power_of)?, ports))
                });
                match read {
                    Err(e) => tracing::warn!("self-healing cannot read the herd: {e}"),
                    Ok((list, names)) => {
                        let name_of = |id: i64| {
                            names
                                .iter()
                                .find(|(m, _, _)| *m == id)
                                .map_or_else(|| format!("miner {id}"), |m| m.2.clone())
                        };
                        let mut waiting = Vec::new();
                        for s in list {
                            let action = match decide(now, &cfg, &s) {
                                Ok(a) => a,
                                Err(why) => {
                                    waiting.push((name_of(s.miner_id), why.to_string()));
                                    continue;
                                }
                            };
                            let outcome = run(&action, program.as_deref());
                            let name = name_of(s.miner_id);
                            let message = describe(&name, &action, outcome.as_ref());
                            tracing::warn!(miner = s.miner_id, "{message}");
                            alerts.do_send(crate::alerts::SelfHealed {
                                miner_id: s.miner_id,
                                miner: name,
                                message,
                            });
                            let (id, sup) = (s.miner_id, sup.clone());
                            db.do_send(crate::db::Write::new(move |c| {
                                let command = record(c, now, id, &action, outcome)?;
                                // A reset is the miner reader's to run: tell it.
                                if let (Action::Reset, Some(row)) =
                                    (&action, crate::db::commands::get(c, command)?)
                                {
                                    sup.do_send(crate::miner::CommandQueued::from(row));
                                }
                                Ok(())
                            }));
                        }
                        status.update(|r| {
                            r.rounds += 1;
                            r.waiting = waiting;
                        });
                    }
                }
                busy.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a self-healing round: {e}");
            self.busy.store(false, Ordering::Release);
        }
    }
}

/// Asks uhubctl which hubs switch port power and keeps the answer in `status`; says so in the
/// log when the answer differs from the last one.
fn list_hubs(program: &Path, status: &Status) {
    let listed = uhubctl::list(program);
    let before = status.report();
    status.update(|r| r.hubs_listed_at = Some(crate::clock::now_ms()));
    match listed {
        Ok(hubs) => {
            if before.hubs.as_ref() != Some(&hubs) {
                let per_port: Vec<&str> = hubs
                    .iter()
                    .filter(|h| h.switching == uhubctl::Switching::PerPort)
                    .map(|h| h.location.as_str())
                    .collect();
                tracing::info!(
                    "uhubctl: hubs that switch each port's power: {}",
                    if per_port.is_empty() {
                        "none (power cycles off; serial resets only)".to_owned()
                    } else {
                        per_port.join(", ")
                    }
                );
            }
            status.update(|r| {
                r.hubs = Some(hubs);
                r.hubs_error = None;
            });
        }
        Err(e) => {
            if before.hubs_error.as_ref() != Some(&e) {
                tracing::warn!("self-healing will not power cycle: {e}");
            }
            status.update(|r| r.hubs_error = Some(e));
        }
    }
}

impl actix::Actor for SelfHealActor {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        self.check_hubs();
        let every = std::time::Duration::from_secs(self.cfg.check_secs.max(1));
        ctx.run_interval(every, |a, _| a.round());
    }
}

/// One round: plans for every stuck miner and records what it does; power cycles run here
/// (through `program`). Returns the miners acted on and how. Runs on a connection that may
/// write (the DbActor's, or the test's).
pub fn tick(
    conn: &Connection,
    now: i64,
    cfg: &SelfHealConfig,
    program: Option<&Path>,
    power_of: &dyn Fn(i64) -> Option<(String, u32)>,
) -> rusqlite::Result<Vec<(i64, Action)>> {
    let power = |id: i64| program.and(power_of(id));
    let mut done = Vec::new();
    for s in stuck(conn, now, &power)? {
        let Some(action) = plan(now, cfg, &s) else {
            continue;
        };
        let outcome = run(&action, program);
        tracing::warn!(miner = s.miner_id, "self-healing: {action:?} ({outcome:?})");
        record(conn, now, s.miner_id, &action, outcome)?;
        done.push((s.miner_id, action));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::memory_db;

    const MIN: i64 = 60_000;

    fn cfg() -> SelfHealConfig {
        SelfHealConfig {
            enabled: true,
            ..SelfHealConfig::default()
        }
    }

    fn stuck_at(since: i64, acted: Vec<i64>) -> Stuck {
        Stuck {
            miner_id: 1,
            since,
            writing: false,
            acted,
            power: None,
        }
    }

    #[test]
    fn waits_for_the_delay_then_resets() {
        let c = cfg();
        let now = 1_000 * MIN;
        let after = c.after_minutes as i64 * MIN;
        assert_eq!(plan(now, &c, &stuck_at(now - after + 1, vec![])), None);
        assert_eq!(
            plan(now, &c, &stuck_at(now - after, vec![])),
            Some(Action::Reset)
        );
    }

    #[test]
    fn actions_read_well() {
        let pc = Action::PowerCycle {
            hub: "1-1.3".into(),
            port: 2,
        };
        assert!(describe("demo-1", &Action::Reset, None).contains("reset through its serial"));
        assert!(describe("demo-1", &pc, Some(&Ok("ok".into())))
            .contains("power cycled hub 1-1.3 port 2"));
        assert!(describe("demo-1", &pc, Some(&Err("no".into()))).ends_with("failed: no"));
    }

    #[test]
    fn never_during_a_write() {
        let mut s = stuck_at(0, vec![]);
        s.writing = true;
        assert_eq!(plan(1_000 * MIN, &cfg(), &s), None);
    }

    #[test]
    fn at_most_once_per_interval_and_six_a_day() {
        let c = cfg();
        let now = 10_000 * MIN;
        let interval = c.min_interval_minutes as i64 * MIN;
        assert_eq!(plan(now, &c, &stuck_at(0, vec![now - interval + 1])), None);
        assert_eq!(
            plan(now, &c, &stuck_at(0, vec![now - interval])),
            Some(Action::Reset)
        );
        let six: Vec<i64> = (1..=6).map(|i| now - i * 3 * 60 * MIN).collect();
        assert_eq!(plan(now, &c, &stuck_at(0, six.clone())), None);
        // A day later the oldest has aged out.
        let five = six[..5].to_vec();
        assert!(plan(now, &c, &stuck_at(0, five)).is_some());
    }

    #[test]
    fn a_reset_that_did_not_help_becomes_a_power_cycle_where_the_hub_can() {
        let c = cfg();
        let now = 10_000 * MIN;
        let mut s = stuck_at(now - 60 * MIN, vec![now - 40 * MIN]);
        assert_eq!(plan(now, &c, &s), Some(Action::Reset), "no power switching");
        s.power = Some(("1-1.3".into(), 2));
        assert_eq!(
            plan(now, &c, &s),
            Some(Action::PowerCycle {
                hub: "1-1.3".into(),
                port: 2
            })
        );
        // An action before this spell does not count as tried.
        s.acted = vec![now - 70 * MIN];
        assert_eq!(plan(now, &c, &s), Some(Action::Reset));
        let no_power = SelfHealConfig {
            power_cycle: false,
            ..c
        };
        s.acted = vec![now - 40 * MIN];
        assert_eq!(plan(now, &no_power, &s), Some(Action::Reset));
    }

    /// `uhubctl` without arguments on a Raspberry Pi 4 with a smart hub and a plain one
    /// (the output shape of uhubctl.c `print_port_status`; 2.4+ tags each hub).
    #[test]
    fn uhubctl_listings_parse() {
        let text = "\
Current status for hub 2 [1d6b:0003 Linux 6.1.21-v8+ xhci-hcd xHCI Host Controller 0000:01:00.0, USB 3.00, 4 ports, ppps]
  Port 1: 02a0 power 5gbps Rx.Detect
  Port 2: 02a0 power 5gbps Rx.Detect
Current status for hub 1-1 [2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps]
  Port 1: 0503 power highspeed enable connect [1a86:7523 QinHeng Electronics USB Serial]
  Port 2: 0100 power
  Port 3: 0000 off
  Port 4: 0503 power highspeed enable connect [05e3:0608 USB2.0 Hub, USB 2.00, 4 ports, ganged]
Current status for hub 1-1.4 [05e3:0608 USB2.0 Hub, USB 2.00, 4 ports, ganged]
  Port 1: 0103 power enable connect [10c4:ea60 Silicon Labs CP2102 USB to UART Bridge Controller 0001]
Current status for hub 3 [1d6b:0002 Linux xhci-hcd, USB 2.00, 1 ports, nops]
  Port 1: 0100 power
";
        let hubs = uhubctl::parse(text);
        let locs: Vec<&str> = hubs.iter().map(|h| h.location.as_str()).collect();
        assert_eq!(locs, ["2", "1-1", "1-1.4", "3"]);
        use uhubctl::Switching::*;
        let kinds: Vec<_> = hubs.iter().map(|h| h.switching).collect();
        assert_eq!(kinds, [PerPort, PerPort, Ganged, None]);
        assert_eq!(
            hubs[1].description,
            "2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps"
        );
        let p = &hubs[1].ports;
        assert_eq!(p.len(), 4);
        assert!(p[0].powered && p[0].connected);
        assert_eq!(
            p[0].device.as_deref(),
            Some("1a86:7523 QinHeng Electronics USB Serial")
        );
        assert!(p[1].powered && !p[1].connected && p[1].device.is_none());
        assert!(!p[2].powered, "off");
        assert_eq!(
            hubs[2].ports[0].device.as_deref(),
            Some("10c4:ea60 Silicon Labs CP2102 USB to UART Bridge Controller 0001")
        );
        // Only per-port hubs, and only ports they have.
        assert!(uhubctl::switchable(&hubs, "1-1", 1));
        assert!(!uhubctl::switchable(&hubs, "1-1", 7));
        assert!(!uhubctl::switchable(&hubs, "1-1.4", 1), "ganged");
        assert!(!uhubctl::switchable(&hubs, "3", 1), "nops");
        assert!(!uhubctl::switchable(&hubs, "1-2", 1), "not listed");
        // uhubctl before 2.4 lists only hubs that switch per port, untagged.
        let old = uhubctl::parse(
            "Current status for hub 3-1 [0424:2514, USB 2.00, 4 ports]\n  Port 1: 0100 power\n",
        );
        assert_eq!(old[0].switching, PerPort);
        // Warnings and an empty listing.
        assert!(uhubctl::parse("No compatible devices detected!\n").is_empty());
    }

    #[test]
    fn waits_say_why() {
        let c = cfg();
        let now = 10_000 * MIN;
        let mut s = stuck_at(0, vec![now - MIN]);
        assert_eq!(
            decide(now, &c, &s),
            Err(Wait::Interval(now - MIN + 30 * MIN))
        );
        s.acted = (1..=6).map(|i| now - i * 60 * MIN).collect();
        assert_eq!(decide(now, &c, &s), Err(Wait::DayLimit));
        assert!(Wait::DayLimit.to_string().starts_with("rate limit"));
        s.writing = true;
        assert_eq!(decide(now, &c, &s), Err(Wait::Writing));
    }

    /// A stuck miner (an open "stalled" alert, as the alert rules store it) in a database:
    /// a tick queues a reset, the next one within 30 min does nothing, a later one with a
    /// fake uhubctl on hand power cycles, and a queued write holds everything back.
    #[test]
    fn ticks_against_a_stuck_miner_with_a_fake_uhubctl() {
        let c = memory_db();
        let t0 = 1_000_000 * MIN;
        c.execute_batch(&format!(
            "INSERT INTO miners (id, name, port, kind) VALUES (1, 'demo-1', '/dev/x', 'demo');
             INSERT INTO alerts (miner_id, rule, state, message, first_at, last_sent_at)
               VALUES (1, 'offline', 'active', 'demo-1 is stalled', {t0}, {t0});"
        ))
        .unwrap();
        let cfg = cfg();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("uhubctl");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$@\" >> {}\necho ok\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = uhubctl::find(Some(dir.path().as_os_str())).unwrap();
        assert_eq!(found, fake);
        assert_eq!(
            uhubctl::find(Some(std::ffi::OsStr::new("/nonexistent"))),
            None
        );
        let power = |_: i64| Some(("1-1.3".to_owned(), 2));

        // Too early.
        assert!(tick(&c, t0 + MIN, &cfg, Some(&found), &power)
            .unwrap()
            .is_empty());
        let now = t0 + 20 * MIN;
        let first = tick(&c, now, &cfg, Some(&found), &power).unwrap();
        assert_eq!(first, [(1, Action::Reset)]);
        let (cmd, status, payload): (String, String, String) = c
            .query_row(
                "SELECT command, status, payload FROM miner_commands",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((cmd.as_str(), status.as_str()), ("RESET", "pending"));
        assert!(payload.contains(REASON));
        // Rate limit: nothing again within 30 min.
        assert!(tick(&c, now + 10 * MIN, &cfg, Some(&found), &power)
            .unwrap()
            .is_empty());
        assert!(!log.exists(), "uhubctl not run yet");

        // Still stuck after the interval: the reset did not help, the hub switches power.
        let r = c
            .query_row("SELECT created_at FROM miner_commands", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap();
        let later = r + 31 * MIN;
        let second = tick(&c, later, &cfg, Some(&found), &power).unwrap();
        assert!(
            matches!(second[0].1, Action::PowerCycle { .. }),
            "{second:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().trim(),
            "-l 1-1.3 -p 2 -a cycle -d 3"
        );
        // Both actions are entries in the miner's stalled incident.
        let open = sql::list(&c, later + MIN, &Filter::default(), 10).unwrap();
        assert_eq!(
            open[0].episode.actions.len(),
            1,
            "the pending reset is not finished yet"
        );
        assert!(open[0].episode.actions[0]
            .text
            .contains("power cycle of hub 1-1.3 port 2"));

        // A write queued on it holds self-healing back.
        c.execute(
            "INSERT INTO miner_commands (miner_id, command, status, created_at) VALUES (1, 'SET_CONFIG', 'pending', 1)",
            [],
        )
        .unwrap();
        assert!(tick(&c, later + 120 * MIN, &cfg, Some(&found), &power)
            .unwrap()
            .is_empty());
    }
}
