//! Incidents: what happened to a miner, told as episodes rather than as alerts that fire and
//! clear. Pure: the database hands over a miner's happenings (alerts opening and closing, failed
//! and successful configuration writes, resets the Shepherd did) in any order, [`build`] turns
//! them into episodes with a start, an end, a cause and what was done. [`availability`] is the
//! share of a window a miner spent mining, from its per-minute rollups.

use serde::Serialize;

/// Two episodes of one kind closer than this are one episode: a miner flapping between
/// offline and online for a minute is one story, not ten.
pub const MERGE_GAP_MS: i64 = 5 * 60_000;

/// What kind of trouble an episode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// The port is closed, in error, or silent.
    Offline,
    /// Connected and talking, but no hashes.
    Stalled,
    /// The miner cannot reach its pool.
    PoolDown,
    /// The pool refuses the worker.
    WorkerRejected,
    /// Many reboots in a short time.
    RebootStorm,
    /// Chip temperature above the limit.
    Overheating,
    /// A configuration write failed; over when a later write succeeds.
    WriteFailed,
}

impl IncidentKind {
    /// Every kind, in display order.
    pub const ALL: [IncidentKind; 7] = [
        IncidentKind::Offline,
        IncidentKind::Stalled,
        IncidentKind::PoolDown,
        IncidentKind::WorkerRejected,
        IncidentKind::RebootStorm,
        IncidentKind::Overheating,
        IncidentKind::WriteFailed,
    ];

    /// The name used in the API and its filters.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Offline => "offline",
            IncidentKind::Stalled => "stalled",
            IncidentKind::PoolDown => "pool_down",
            IncidentKind::WorkerRejected => "worker_rejected",
            IncidentKind::RebootStorm => "reboot_storm",
            IncidentKind::Overheating => "overheating",
            IncidentKind::WriteFailed => "write_failed",
        }
    }

    /// The kind named `s` (as [`IncidentKind::as_str`] spells it).
    pub fn parse(s: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            IncidentKind::Offline => "offline",
            IncidentKind::Stalled => "stalled",
            IncidentKind::PoolDown => "pool down",
            IncidentKind::WorkerRejected => "worker rejected",
            IncidentKind::RebootStorm => "reboot storm",
            IncidentKind::Overheating => "overheating",
            IncidentKind::WriteFailed => "write failed",
        }
    }

    /// The incident an alert rule (as stored in `alerts.rule`) with `message` stands for;
    /// `None` for rules that are not trouble (a block found) or are told elsewhere (a reboot).
    pub fn from_alert(rule: &str, message: &str) -> Option<IncidentKind> {
        Some(match rule {
            // The offline rule covers a stalled miner too; its message says which.
            "offline" if message.ends_with("stalled") => IncidentKind::Stalled,
            "offline" => IncidentKind::Offline,
            "pool_disconnected" => IncidentKind::PoolDown,
            "worker_rejected" => IncidentKind::WorkerRejected,
            "reboot_storm" => IncidentKind::RebootStorm,
            "temperature" => IncidentKind::Overheating,
            _ => return None,
        })
    }
}

/// What a happening says.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// Trouble of `kind` started, because of `cause`.
    Opened {
        /// Which trouble.
        kind: IncidentKind,
        /// Why, for people.
        cause: String,
    },
    /// Trouble of `kind` is over.
    Closed {
        /// Which trouble.
        kind: IncidentKind,
    },
    /// The Shepherd (or the owner) did something about the miner.
    Action {
        /// What, for people.
        text: String,
    },
}

/// One thing that happened to a miner.
#[derive(Debug, Clone, PartialEq)]
pub struct Happening {
    /// Which miner.
    pub miner_id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// What.
    pub mark: Mark,
}

/// Something done during an episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// When (Unix ms).
    pub at: i64,
    /// What.
    pub text: String,
}

/// One episode of trouble.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// Which miner.
    pub miner_id: i64,
    /// What kind of trouble.
    pub kind: IncidentKind,
    /// When it started (Unix ms).
    pub start: i64,
    /// When it ended; `None` while it lasts.
    pub end: Option<i64>,
    /// Why it started (the first cause given).
    pub cause: String,
    /// What was done meanwhile, oldest first.
    pub actions: Vec<Action>,
}

impl Episode {
    /// Whether it still lasts.
    pub fn is_open(&self) -> bool {
        self.end.is_none()
    }

    /// How long it lasted, or has lasted by `now` (ms).
    pub fn duration_ms(&self, now: i64) -> i64 {
        (self.end.unwrap_or(now) - self.start).max(0)
    }
}

/// Builds the episodes of any number of miners from their happenings (in any order); newest
/// first. An episode of a kind opens at the first `Opened` and closes at the next `Closed` of
/// that kind; one reopened within [`MERGE_GAP_MS`] of closing carries on. An action belongs to
/// the miner's episodes open at its time (the one opened last, when several are); an action with
/// none open is not an incident and is left out. A `Closed` with nothing open is ignored.
pub fn build(happenings: &[Happening]) -> Vec<Episode> {
    let mut sorted: Vec<&Happening> = happenings.iter().collect();
    // Opens before actions before closes at the same instant: an action taken at the moment a
    // trouble starts or ends belongs to it.
    let rank = |m: &Mark| match m {
        Mark::Opened { .. } => 0,
        Mark::Action { .. } => 1,
        Mark::Closed { .. } => 2,
    };
    sorted.sort_by_key(|h| (h.miner_id, h.at, rank(&h.mark)));
    let mut done: Vec<Episode> = Vec::new();
    // Episodes of the current miner that are open (index into `done`).
    let mut open: Vec<usize> = Vec::new();
    let mut miner = None;
    for h in sorted {
        if miner != Some(h.miner_id) {
            miner = Some(h.miner_id);
            open.clear();
        }
        match &h.mark {
            Mark::Opened { kind, cause } => {
                if open.iter().any(|&i| done[i].kind == *kind) {
                    continue;
                }
                let resumed = done.iter().rposition(|e| {
                    e.miner_id == h.miner_id
                        && e.kind == *kind
                        && e.end.is_some_and(|end| h.at - end < MERGE_GAP_MS)
                });
                match resumed {
                    Some(i) => {
                        done[i].end = None;
                        open.push(i);
                    }
                    None => {
                        done.push(Episode {
                            miner_id: h.miner_id,
                            kind: *kind,
                            start: h.at,
                            end: None,
                            cause: cause.clone(),
                            actions: Vec::new(),
                        });
                        open.push(done.len() - 1);
                    }
                }
            }
            Mark::Closed { kind } => {
                if let Some(p) = open.iter().position(|&i| done[i].kind == *kind) {
                    let i = open.remove(p);
                    done[i].end = Some(h.at);
                }
            }
            Mark::Action { text } => {
                if let Some(&i) = open.last() {
                    done[i].actions.push(Action {
                        at: h.at,
                        text: text.clone(),
                    });
                }
            }
        }
    }
    done.sort_by(|a, b| b.start.cmp(&a.start).then(a.miner_id.cmp(&b.miner_id)));
    done
}

/// The share (0–100 %) of the window `[from, to)` (Unix ms) that a miner spent mining, from the
/// minutes (Unix seconds, on a minute boundary, as `miner_minutes` keeps them) in which it
/// hashed. Time before the miner was added (`since`) does not count against it; `None` when
/// none of the window is left.
pub fn availability(mining_minutes: &[i64], from: i64, to: i64, since: i64) -> Option<f64> {
    let start = from.max(since);
    if to - start < 60_000 {
        return None;
    }
    let total = ((to - start) / 60_000) as f64;
    let mined = mining_minutes
        .iter()
        .filter(|&&m| m * 1000 >= start - 59_999 && m * 1000 < to)
        .count() as f64;
    Some((100.0 * mined / total).min(100.0))
}

/// The windows availability is told over: label and length in ms.
pub const WINDOWS: [(&str, i64); 3] = [
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn open(miner_id: i64, at: i64, kind: IncidentKind, cause: &str) -> Happening {
        Happening {
            miner_id,
            at,
            mark: Mark::Opened {
                kind,
                cause: cause.into(),
            },
        }
    }
    fn close(miner_id: i64, at: i64, kind: IncidentKind) -> Happening {
        Happening {
            miner_id,
            at,
            mark: Mark::Closed { kind },
        }
    }
    fn act(miner_id: i64, at: i64, text: &str) -> Happening {
        Happening {
            miner_id,
            at,
            mark: Mark::Action { text: text.into() },
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn an_offline_spell_with_a_reset_is_one_closed_episode() {
        let e = build(&[
            close(1, 30 * MIN, IncidentKind::Stalled),
            act(1, 12 * MIN, "serial reset (self-healing)"),
            open(1, 2 * MIN, IncidentKind::Stalled, "demo-1 is stalled"),
        ]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, IncidentKind::Stalled);
        assert_eq!((e[0].start, e[0].end), (2 * MIN, Some(30 * MIN)));
        assert_eq!(e[0].duration_ms(0), 28 * MIN);
        assert_eq!(e[0].cause, "demo-1 is stalled");
        assert_eq!(e[0].actions[0].text, "serial reset (self-healing)");
    }

    #[test]
    fn flapping_within_the_gap_is_one_episode_a_later_return_a_new_one() {
        let k = IncidentKind::Offline;
        let e = build(&[
            open(1, 0, k, "first"),
            close(1, MIN, k),
            open(1, 3 * MIN, k, "second"),
            close(1, 4 * MIN, k),
            open(1, 4 * MIN + MERGE_GAP_MS, k, "third"),
        ]);
        assert_eq!(e.len(), 2, "{e:?}");
        // Newest first: the third stays open.
        assert_eq!(e[0].cause, "third");
        assert!(e[0].is_open());
        assert_eq!(e[0].duration_ms(10 * MIN + MERGE_GAP_MS), 6 * MIN);
        assert_eq!((e[1].start, e[1].end), (0, Some(4 * MIN)));
        assert_eq!(e[1].cause, "first");
    }

    #[test]
    fn kinds_and_miners_are_separate_stories() {
        let e = build(&[
            open(1, 0, IncidentKind::PoolDown, "pool"),
            open(1, MIN, IncidentKind::Overheating, "hot"),
            open(2, MIN, IncidentKind::PoolDown, "other miner"),
            act(1, 2 * MIN, "identify"),
            close(1, 3 * MIN, IncidentKind::PoolDown),
            close(2, 5 * MIN, IncidentKind::Overheating),
        ]);
        assert_eq!(e.len(), 3);
        let hot = e
            .iter()
            .find(|x| x.kind == IncidentKind::Overheating)
            .unwrap();
        assert_eq!(
            hot.actions.len(),
            1,
            "the action goes to the latest open episode"
        );
        assert!(hot.is_open());
        let pool1 = e
            .iter()
            .find(|x| x.miner_id == 1 && x.kind == IncidentKind::PoolDown)
            .unwrap();
        assert_eq!(pool1.end, Some(3 * MIN));
        assert!(pool1.actions.is_empty());
        let pool2 = e.iter().find(|x| x.miner_id == 2).unwrap();
        assert!(pool2.is_open(), "a close of another kind does not end it");
    }

    #[test]
    fn stray_closes_repeated_opens_and_idle_actions_change_nothing() {
        let k = IncidentKind::WriteFailed;
        let e = build(&[
            close(1, 0, k),
            act(1, MIN, "nothing open"),
            open(1, 2 * MIN, k, "first failure"),
            open(1, 3 * MIN, k, "second failure"),
            close(1, 4 * MIN, k),
        ]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].cause, "first failure");
        assert_eq!((e[0].start, e[0].end), (2 * MIN, Some(4 * MIN)));
        assert!(e[0].actions.is_empty());
    }

    #[test]
    fn an_action_at_the_closing_instant_belongs_to_the_episode() {
        let k = IncidentKind::Stalled;
        let e = build(&[close(1, MIN, k), act(1, MIN, "reset"), open(1, 0, k, "c")]);
        assert_eq!(e[0].actions.len(), 1);
    }

    #[test]
    fn alerts_map_to_kinds() {
        use IncidentKind as K;
        assert_eq!(K::from_alert("offline", "m is stalled"), Some(K::Stalled));
        assert_eq!(K::from_alert("offline", "m is offline"), Some(K::Offline));
        assert_eq!(K::from_alert("offline", "m is in error"), Some(K::Offline));
        assert_eq!(K::from_alert("temperature", "hot"), Some(K::Overheating));
        assert_eq!(K::from_alert("pool_disconnected", ""), Some(K::PoolDown));
        assert_eq!(K::from_alert("block_found", ""), None);
        for k in K::ALL {
            assert_eq!(K::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn availability_counts_mining_minutes_over_the_window() {
        let day = 86_400_000;
        let to = 10 * day;
        let from = to - day;
        // Mined the first 12 hours of the window.
        let minutes: Vec<i64> = (0..720).map(|i| (from + i * MIN) / 1000).collect();
        assert_eq!(availability(&minutes, from, to, 0), Some(50.0));
        // Added 12 h ago, mined all of it: 100 %, not 50 %.
        let later: Vec<i64> = (720..1440).map(|i| (from + i * MIN) / 1000).collect();
        assert_eq!(availability(&later, from, to, from + day / 2), Some(100.0));
        // Minutes outside the window do not count.
        let outside = vec![(from - 10 * MIN) / 1000, to / 1000];
        assert_eq!(availability(&outside, from, to, 0), Some(0.0));
        // Nothing of the window left.
        assert_eq!(availability(&minutes, from, to, to), None);
    }
}
