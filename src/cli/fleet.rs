//! `shepherd profiles …`, `shepherd miners set`, `shepherd drift`, `shepherd reconcile`: fleet
//! configuration as desired state from a shell. Writes go through the running shepherd's
//! SET_CONFIG queue, one miner at a time, canary first ([`crate::rollout::Rollout`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::cli::ProfilesAction;
use crate::db::commands::{self, CommandKind};
use crate::db::fleet::{self as dbfleet, DesiredRow};
use crate::db::{self, miners};
use crate::fleet::drift::{Drift, BOARD_KEYS};
use crate::fleet::probe::{probe, TIMEOUT};
use crate::fleet::profile::{Endpoint, Profile, Window};
use crate::fleet::worker;
use crate::rollout::{MinerState, Next, Rollout};

/// `shepherd profiles list|add|remove|test`.
pub fn profiles(conn: &Connection, action: ProfilesAction) -> anyhow::Result<()> {
    match action {
        ProfilesAction::List => {
            let all = dbfleet::profiles(conn)?;
            if all.is_empty() {
                println!(
                    "no profiles yet: add one with `shepherd profiles add NAME --pool \
                     public-pool.io:21496 --pool solo.ckpool.org:3333`"
                );
            }
            for p in all {
                println!("{}", describe(&p));
            }
        }
        ProfilesAction::Add {
            name,
            pool,
            failover,
            down_minutes,
            back_minutes,
            window,
            time_zone,
            no_test,
        } => {
            let pools = pool
                .iter()
                .map(|p| Endpoint::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let schedule = window
                .iter()
                .map(|w| Window::parse(w))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let mut p = Profile {
                id: 0,
                name: name.trim().to_owned(),
                pools,
                failover,
                down_minutes,
                back_minutes,
                schedule,
                time_zone: time_zone.unwrap_or_default(),
            };
            let errors = p.check();
            if !errors.is_empty() {
                bail!("profile not saved:\n  - {}", errors.join("\n  - "));
            }
            if !no_test {
                test_pools(&p);
            }
            if let Some(old) = dbfleet::profile_named(conn, &p.name)? {
                p.id = old.id;
            }
            let id = dbfleet::save_profile(conn, &p)?;
            println!("saved profile {} (id {id})", p.name);
        }
        ProfilesAction::Remove { name } => {
            if !dbfleet::remove_profile(conn, &name)? {
                bail!("no profile named {name:?}: `shepherd profiles list` shows them");
            }
            println!("removed profile {name}; its miners keep their pool until changed");
        }
        ProfilesAction::Test { name } => {
            let p = dbfleet::profile_named(conn, &name)?
                .with_context(|| format!("no profile named {name:?}"))?;
            if !test_pools(&p) {
                bail!("some pools of {name} did not answer");
            }
        }
    }
    Ok(())
}

/// One profile in a line or two.
fn describe(p: &Profile) -> String {
    let pools: Vec<String> = p.pools.iter().map(Endpoint::label).collect();
    let mut s = format!("{}\t{}", p.name, pools.join(" → "));
    if p.failover {
        s.push_str(&format!(
            "\tfailover after {} min, back after {} min",
            p.down_minutes, p.back_minutes
        ));
    }
    if !p.schedule.is_empty() {
        let w: Vec<String> = p.schedule.iter().map(Window::label).collect();
        let zone = if p.time_zone.is_empty() {
            "local time"
        } else {
            p.time_zone.as_str()
        };
        s.push_str(&format!("\tschedule ({zone}) {}", w.join(", ")));
    }
    s
}

/// Tests every pool of a profile from here and prints each result; true if all answered.
fn test_pools(p: &Profile) -> bool {
    let mut all = true;
    for (i, e) in p.pools.iter().enumerate() {
        let r = probe(e, TIMEOUT);
        let role = if i == 0 { "primary" } else { "fallback" };
        let ms = r.millis.map(|m| format!(" in {m} ms")).unwrap_or_default();
        let verdict = if r.ok { "ok" } else { "FAILED" };
        eprintln!("test {role} {}: {verdict}{ms} — {}", r.pool, r.detail);
        all &= r.ok;
    }
    all
}

/// `shepherd miners set NAME [--profile P] [--worker W] [--address A] [--board KEY=VALUE]`.
pub fn set_miner(
    conn: &Connection,
    name: &str,
    profile: Option<&str>,
    worker_name: Option<&str>,
    address: Option<&str>,
    board: &[String],
) -> anyhow::Result<()> {
    let miner = miners::list(conn)?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| miners::MinerError::NotFound(name.to_owned()))?;
    let mut row = dbfleet::desired_row(conn, miner.id)?.unwrap_or(DesiredRow {
        board_json: "{}".into(),
        ..DesiredRow::default()
    });
    if let Some(p) = profile {
        let p = dbfleet::profile_named(conn, p)?
            .with_context(|| format!("no profile named {p:?}: `shepherd profiles list`"))?;
        if row.profile_id != Some(p.id) {
            row.active_pool = 0;
        }
        row.profile_id = Some(p.id);
    }
    if let Some(a) = address {
        row.address_id = Some(dbfleet::address_id(conn, a)?.map_err(anyhow::Error::msg)?);
    }
    let taken = dbfleet::workers_taken(conn, Some(miner.id))?;
    match worker_name {
        Some(w) => {
            worker::check(w).map_err(anyhow::Error::msg)?;
            if taken.iter().any(|t| t.eq_ignore_ascii_case(w)) {
                bail!(
                    "the worker name {w:?} is another miner's: the pool could not tell them \
                     apart (try {:?})",
                    worker::propose(w, &taken)
                );
            }
            row.worker = Some(w.to_owned());
        }
        None if row.worker.is_none() && row.address_id.is_some() => {
            let w = worker::propose(name, &taken);
            eprintln!("worker name {w} (from the miner's name; change it with --worker)");
            row.worker = Some(w);
        }
        None => {}
    }
    let mut board_map: Map<String, Value> =
        serde_json::from_str(&row.board_json).unwrap_or_default();
    for kv in board {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("{kv:?}: write board keys as KEY=VALUE, e.g. gmtZone=1"))?;
        if !BOARD_KEYS.contains(&k) {
            bail!(
                "{k} is not a board key (use one of {})",
                BOARD_KEYS.join(", ")
            );
        }
        let v: Value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        board_map.insert(k.to_owned(), v);
    }
    row.board_json = Value::Object(board_map).to_string();
    // Check the whole desired state before storing it.
    dbfleet::set_desired(conn, miner.id, &row)?;
    let view = dbfleet::fleet(conn)?;
    if let Some(problem) = view
        .iter()
        .find(|m| m.id == miner.id)
        .and_then(|m| m.problem.clone())
    {
        bail!("{name}: stored, but it cannot be written as it is: {problem}");
    }
    println!("{name}: desired configuration saved; `shepherd reconcile {name}` writes it");
    Ok(())
}

/// `shepherd drift [--json]`.
pub fn drift(conn: &Connection, json: bool) -> anyhow::Result<()> {
    let view = dbfleet::fleet(conn)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    for m in &view {
        let state = match &m.drift {
            Drift::Unknown => "unknown (never read)".to_string(),
            Drift::InSync => "in sync".to_string(),
            Drift::Drifted { keys } => format!("drifted: {}", keys.join(", ")),
        };
        let problem = m
            .problem
            .as_ref()
            .map(|p| format!("\tcannot write: {p}"))
            .unwrap_or_default();
        println!(
            "{}\t{}\t{}\t{state}{problem}",
            m.name,
            m.profile.as_deref().unwrap_or("-"),
            m.worker.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `shepherd reconcile [NAME…|--all]`: writes each chosen miner's desired keys through a
/// canary rollout (the first miner alone, then the rest one at a time, stopping at the first
/// failure). Miners already in sync are left alone; the pools are tested first.
pub fn reconcile(
    db_path: &Path,
    names: &[String],
    all: bool,
    force: bool,
    timeout: u64,
) -> anyhow::Result<()> {
    let (conn, _) = db::open_writer(db_path)?;
    let view = dbfleet::fleet(&conn)?;
    if names.is_empty() && !all {
        bail!("name the miners to reconcile, or --all for every drifted or unknown one");
    }
    for n in names {
        if !view.iter().any(|m| &m.name == n) {
            bail!("no miner named {n:?}: `shepherd miners list` shows them");
        }
    }
    let chosen: Vec<_> = view
        .iter()
        .filter(|m| all || names.contains(&m.name))
        .filter(|m| m.drift != Drift::InSync && !m.desired.is_empty())
        .collect();
    for m in view.iter().filter(|m| all || names.contains(&m.name)) {
        if let Some(p) = &m.problem {
            bail!("{}: not written: {p}", m.name);
        }
    }
    if chosen.is_empty() {
        println!("nothing to do: the chosen miners are in sync (or have nothing desired)");
        return Ok(());
    }
    // Test each pool once before writing it anywhere.
    let mut tested: BTreeMap<(String, u16), bool> = BTreeMap::new();
    for m in &chosen {
        if let (Some(Value::String(h)), Some(p)) = (
            m.desired.get("poolString"),
            m.desired.get("portNumber").and_then(Value::as_u64),
        ) {
            let port = u16::try_from(p).unwrap_or(0);
            tested.entry((h.clone(), port)).or_insert_with(|| {
                let r = probe(
                    &Endpoint {
                        host: h.clone(),
                        port,
                        password: String::new(),
                    },
                    TIMEOUT,
                );
                eprintln!(
                    "test {}: {} — {}",
                    r.pool,
                    if r.ok { "ok" } else { "FAILED" },
                    r.detail
                );
                r.ok
            });
        }
    }
    if !force && tested.values().any(|ok| !ok) {
        bail!("not written: a pool did not answer the test (fix the profile, or --force)");
    }
    let mut plan = Rollout::plan_each(
        0,
        chosen
            .iter()
            .map(|m| (m.id, m.name.clone(), m.desired.clone()))
            .collect(),
    )
    .map_err(anyhow::Error::msg)?;
    eprintln!("{}", plan.summary());
    while let Next::Start(index) = plan.next() {
        let (miner_id, change) = match (plan.miners.get(index), plan.change_for(index)) {
            (Some(m), Some(c)) => (m.miner_id, c),
            _ => break,
        };
        let payload = Value::Object(change).to_string();
        let id = commands::insert(&conn, miner_id, CommandKind::SetConfig, Some(&payload))?;
        plan.started(index, id);
        let name = plan.miners[index].name.clone();
        eprintln!("queued SET_CONFIG #{id} for {name}");
        let (ok, detail) = match super::flash::follow(&conn, db_path, id, timeout) {
            Ok(row) => (row.status == "complete", row.detail.unwrap_or_default()),
            Err(e) => (false, e.to_string()),
        };
        plan.finished(index, ok, detail);
        eprintln!("{}", plan.summary());
    }
    for m in &plan.miners {
        let state = match &m.state {
            MinerState::Done { .. } => "written".to_string(),
            MinerState::Failed { detail, .. } => format!("failed: {detail}"),
            MinerState::Skipped => "not touched".into(),
            MinerState::Waiting | MinerState::Running { .. } => "unfinished".into(),
        };
        println!("{}\t{state}", m.name);
    }
    if plan.next() != Next::Done {
        bail!("{}", plan.summary());
    }
    Ok(())
}
