//! Canary rollout: one pool/address change applied to many miners, one at a time. The first
//! miner is the canary; the rest follow only once it came back mining, and the rollout stops
//! at the first failure (a SET_CONFIG that does not confirm its boot has already put that
//! miner's backup back, so a stop leaves every miner on a configuration that mines).
//!
//! The plan is a pure state machine ([`Rollout`]); [`run`] drives it with SET_CONFIG commands
//! through the normal queue, so every step also shows on each miner's manage page.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db::{commands, DbActor, ReadPool, Write};
use crate::flash::nerd_config;
use crate::miner::CommandQueued;
use crate::supervisor::Supervisor;

/// Where one miner of a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MinerState {
    /// Not started yet.
    Waiting,
    /// Its SET_CONFIG command is queued or running.
    Running {
        /// The command's id.
        command: i64,
    },
    /// Written, verified, booted with the change and mining.
    Done {
        /// The command's id.
        command: i64,
    },
    /// The write failed (and was rolled back by the command itself).
    Failed {
        /// The command's id, when one was queued.
        command: Option<i64>,
        /// Why.
        detail: String,
    },
    /// Not attempted because an earlier miner failed.
    Skipped,
}

/// One miner in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutMiner {
    /// Miner id.
    pub miner_id: i64,
    /// Its name.
    pub name: String,
    /// Keys for this miner only, over the rollout's common change (a reconcile writes each
    /// miner's own worker name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own: Option<Map<String, Value>>,
    /// Where it stands.
    #[serde(flatten)]
    pub state: MinerState,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Write miner number `index` (0 is the canary).
    Start(usize),
    /// A miner's command is still running: wait for it.
    Wait,
    /// Every miner is done.
    Done,
    /// A miner failed: nothing more is written.
    Stopped,
}

/// A rollout's plan and progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// Its id (for `GET /api/rollout/<id>`).
    pub id: u64,
    /// The keys written to every miner.
    pub change: Map<String, Value>,
    /// The miners, canary first.
    pub miners: Vec<RolloutMiner>,
}

/// Refuses an empty list and a miner given twice.
fn check_list(miners: &[(i64, String)]) -> Result<(), String> {
    if miners.is_empty() {
        return Err("choose at least one miner (the first is the canary)".into());
    }
    let mut seen = HashSet::new();
    for (m, name) in miners {
        if !seen.insert(*m) {
            return Err(format!("{name} is listed twice"));
        }
    }
    Ok(())
}

impl Rollout {
    /// Plans a rollout of `change` to `miners` (id, name), the first being the canary. Refuses
    /// an empty list, a miner given twice, and a change that is not valid.
    pub fn plan(
        id: u64,
        change: Map<String, Value>,
        miners: Vec<(i64, String)>,
    ) -> Result<Rollout, String> {
        check_list(&miners)?;
        let errors = nerd_config::validate_change(&change);
        if !errors.is_empty() {
            return Err(nerd_config::describe(&errors));
        }
        Ok(Rollout {
            id,
            change,
            miners: miners
                .into_iter()
                .map(|(miner_id, name)| RolloutMiner {
                    miner_id,
                    name,
                    own: None,
                    state: MinerState::Waiting,
                })
                .collect(),
        })
    }

    /// Plans a rollout where each miner gets its own change (reconciling miners to their
    /// desired configurations), with the same checks, canary first.
    pub fn plan_each(
        id: u64,
        miners: Vec<(i64, String, Map<String, Value>)>,
    ) -> Result<Rollout, String> {
        let mut owns = Vec::with_capacity(miners.len());
        for (_, name, change) in &miners {
            let errors = nerd_config::validate_change(change);
            if !errors.is_empty() {
                return Err(format!("{name}: {}", nerd_config::describe(&errors)));
            }
            owns.push(change.clone());
        }
        let list: Vec<(i64, String)> = miners.into_iter().map(|(m, n, _)| (m, n)).collect();
        check_list(&list)?;
        let mut plan = Rollout {
            id,
            change: Map::new(),
            miners: list
                .into_iter()
                .map(|(miner_id, name)| RolloutMiner {
                    miner_id,
                    name,
                    own: None,
                    state: MinerState::Waiting,
                })
                .collect(),
        };
        for (m, own) in plan.miners.iter_mut().zip(owns) {
            m.own = Some(own);
        }
        Ok(plan)
    }

    /// The keys written to miner `index`: the common change and its own.
    pub fn change_for(&self, index: usize) -> Option<Map<String, Value>> {
        let m = self.miners.get(index)?;
        let mut change = self.change.clone();
        if let Some(own) = &m.own {
            change.extend(own.clone());
        }
        Some(change)
    }

    /// What to do now.
    pub fn next(&self) -> Next {
        if self
            .miners
            .iter()
            .any(|m| matches!(m.state, MinerState::Failed { .. }))
        {
            return Next::Stopped;
        }
        if self
            .miners
            .iter()
            .any(|m| matches!(m.state, MinerState::Running { .. }))
        {
            return Next::Wait;
        }
        match self
            .miners
            .iter()
            .position(|m| m.state == MinerState::Waiting)
        {
            Some(i) => Next::Start(i),
            None => Next::Done,
        }
    }

    /// Miner `index`'s command was queued.
    pub fn started(&mut self, index: usize, command: i64) {
        if let Some(m) = self.miners.get_mut(index) {
            m.state = MinerState::Running { command };
        }
    }

    /// Miner `index` ended: on failure every miner still waiting is skipped.
    pub fn finished(&mut self, index: usize, ok: bool, detail: String) {
        let command = match self.miners.get(index).map(|m| &m.state) {
            Some(MinerState::Running { command }) => Some(*command),
            _ => None,
        };
        let Some(m) = self.miners.get_mut(index) else {
            return;
        };
        m.state = match (ok, command) {
            (true, Some(command)) => MinerState::Done { command },
            _ => MinerState::Failed { command, detail },
        };
        if !ok {
            for m in &mut self.miners {
                if m.state == MinerState::Waiting {
                    m.state = MinerState::Skipped;
                }
            }
        }
    }

    /// One line for people: where the rollout stands.
    pub fn summary(&self) -> String {
        let done = self
            .miners
            .iter()
            .filter(|m| matches!(m.state, MinerState::Done { .. }))
            .count();
        let total = self.miners.len();
        match self.next() {
            Next::Done => format!("finished: all {total} miner(s) written and mining"),
            Next::Stopped => {
                let failed = self
                    .miners
                    .iter()
                    .find(|m| matches!(m.state, MinerState::Failed { .. }));
                let who = failed.map_or("a miner", |m| m.name.as_str());
                let role = if failed.is_some_and(|f| Some(f) == self.miners.first()) {
                    "the canary "
                } else {
                    ""
                };
                format!(
                    "stopped: {role}{who} failed, {done} of {total} written; the others were not \
                     touched"
                )
            }
            Next::Wait | Next::Start(_) => {
                let canary_done = self
                    .miners
                    .first()
                    .is_some_and(|m| matches!(m.state, MinerState::Done { .. }));
                if canary_done {
                    format!("running: {done} of {total} done (canary mining)")
                } else {
                    let canary = self.miners.first().map_or("", |m| m.name.as_str());
                    format!("running: canary {canary} first")
                }
            }
        }
    }
}

/// Rollouts of this process, by id (progress for the page; they are not resumed after a
/// restart: each miner's own command history keeps what happened).
#[derive(Debug, Clone, Default)]
pub struct Rollouts(Arc<Mutex<BTreeMap<u64, Rollout>>>);

impl Rollouts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Rollout>> {
        // A panicked runner must not take the page down with it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a planned rollout under a new id (set in it) and returns that id.
    pub fn add(&self, mut rollout: Rollout) -> u64 {
        let mut map = self.lock();
        let id = map.keys().next_back().map_or(1, |k| k + 1);
        rollout.id = id;
        map.insert(id, rollout);
        id
    }

    /// A copy of rollout `id`.
    pub fn get(&self, id: u64) -> Option<Rollout> {
        self.lock().get(&id).cloned()
    }

    /// Whether any rollout is still writing (automatic switches wait for it).
    pub fn any_running(&self) -> bool {
        self.lock()
            .values()
            .any(|r| matches!(r.next(), Next::Wait | Next::Start(_)))
    }

    fn update<R>(&self, id: u64, f: impl FnOnce(&mut Rollout) -> R) -> Option<R> {
        self.lock().get_mut(&id).map(f)
    }
}

/// Drives rollout `id` to its end: queues each miner's SET_CONFIG, waits for it, and goes on
/// or stops as [`Rollout::next`] says.
pub async fn run(
    rollouts: Rollouts,
    id: u64,
    pool: ReadPool,
    db: Addr<DbActor>,
    supervisor: Addr<Supervisor>,
) {
    loop {
        let Some(next) = rollouts.update(id, |r| r.next()) else {
            return;
        };
        let index = match next {
            Next::Start(i) => i,
            Next::Wait | Next::Done | Next::Stopped => return,
        };
        let Some(Some((miner_id, payload))) = rollouts.update(id, |r| {
            let change = Value::Object(r.change_for(index)?).to_string();
            r.miners.get(index).map(|m| (m.miner_id, change))
        }) else {
            return;
        };
        let stored = payload.clone();
        let queued = db
            .send(Write::new(move |c| {
                commands::insert(
                    c,
                    miner_id,
                    crate::db::commands::CommandKind::SetConfig,
                    Some(&stored),
                )
            }))
            .await;
        let command = match queued {
            Ok(Ok(command)) => command,
            Ok(Err(e)) => {
                rollouts.update(id, |r| r.finished(index, false, format!("database: {e}")));
                return;
            }
            Err(e) => {
                rollouts.update(id, |r| r.finished(index, false, format!("database: {e}")));
                return;
            }
        };
        rollouts.update(id, |r| r.started(index, command));
        supervisor.do_send(CommandQueued::new(
            command,
            miner_id,
            crate::db::commands::CommandKind::SetConfig,
            Some(payload),
        ));
        let (ok, detail) = wait_for(&pool, command).await;
        rollouts.update(id, |r| r.finished(index, ok, detail));
    }
}

/// Polls command `id` until it ends; (succeeded, detail).
async fn wait_for(pool: &ReadPool, id: i64) -> (bool, String) {
    loop {
        let p = pool.clone();
        let row = actix_web::web::block(move || p.with(|c| commands::get(c, id))).await;
        match row {
            Ok(Ok(Some(row))) if row.status == "complete" || row.status == "error" => {
                return (row.status == "complete", row.detail.unwrap_or_default())
            }
            Ok(Ok(None)) => return (false, format!("command #{id} vanished")),
            _ => {}
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change() -> Map<String, Value> {
        json!({"poolString": "solo.ckpool.org", "portNumber": 3333})
            .as_object()
            .cloned()
            .unwrap()
    }

    fn three() -> Rollout {
        Rollout::plan(
            1,
            change(),
            vec![(1, "a".into()), (2, "b".into()), (3, "c".into())],
        )
        .unwrap()
    }

    #[test]
    fn canary_first_then_the_rest_one_at_a_time() {
        let mut r = three();
        assert_eq!(r.next(), Next::Start(0));
        r.started(0, 10);
        assert_eq!(r.next(), Next::Wait);
        assert!(r.summary().contains("canary a"));
        r.finished(0, true, "ok".into());
        assert_eq!(r.next(), Next::Start(1));
        r.started(1, 11);
        assert_eq!(r.next(), Next::Wait);
        assert!(r.summary().contains("1 of 3 done"));
        r.finished(1, true, "ok".into());
        r.started(2, 12);
        r.finished(2, true, "ok".into());
        assert_eq!(r.next(), Next::Done);
        assert!(r.summary().starts_with("finished"));
    }

    #[test]
    fn a_failed_canary_stops_everything() {
        let mut r = three();
        r.started(0, 10);
        r.finished(0, false, "booted to AP mode; restored".into());
        assert_eq!(r.next(), Next::Stopped);
        assert_eq!(r.miners[1].state, MinerState::Skipped);
        assert_eq!(r.miners[2].state, MinerState::Skipped);
        assert!(
            r.summary().contains("the canary a failed"),
            "{}",
            r.summary()
        );
    }

    #[test]
    fn a_later_failure_stops_the_rest() {
        let mut r = three();
        r.started(0, 10);
        r.finished(0, true, String::new());
        r.started(1, 11);
        r.finished(1, false, "MD5 mismatch".into());
        assert_eq!(r.next(), Next::Stopped);
        assert_eq!(r.miners[0].state, MinerState::Done { command: 10 });
        assert_eq!(r.miners[2].state, MinerState::Skipped);
        assert!(r.summary().contains("b failed, 1 of 3"), "{}", r.summary());
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(Rollout::plan(1, change(), vec![]).is_err());
        assert!(
            Rollout::plan(1, change(), vec![(1, "a".into()), (1, "a".into())])
                .unwrap_err()
                .contains("twice")
        );
        let bad = json!({"portNumber": 0}).as_object().cloned().unwrap();
        assert!(Rollout::plan(1, bad, vec![(1, "a".into())]).is_err());
        assert!(Rollout::plan(1, Map::new(), vec![(1, "a".into())]).is_err());
    }

    #[test]
    fn each_miner_gets_its_own_change() {
        let own = |w: &str| {
            json!({"btcString": format!("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.{w}")})
                .as_object()
                .cloned()
                .unwrap()
        };
        let r = Rollout::plan_each(
            1,
            vec![(1, "a".into(), own("a")), (2, "b".into(), own("b"))],
        )
        .unwrap();
        assert_eq!(r.next(), Next::Start(0));
        assert!(r.change_for(1).unwrap()["btcString"]
            .as_str()
            .unwrap()
            .ends_with(".b"));
        assert!(r.change_for(2).is_none());
        assert!(Rollout::plan_each(1, vec![]).is_err());
        assert!(Rollout::plan_each(1, vec![(1, "a".into(), Map::new())]).is_err());
    }

    #[test]
    fn registry_numbers_rollouts() {
        let reg = Rollouts::default();
        let a = reg.add(three());
        let b = reg.add(three());
        assert_eq!((a, b), (1, 2));
        assert_eq!(reg.get(2).unwrap().id, 2);
        assert!(reg.get(3).is_none());
    }
}
