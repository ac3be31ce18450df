//! What alerts are made of, as data: the rules' names and severities, a notice to send, the
//! signs read from events, and an alert as stored. Pure, so that the database can store and
//! load them without depending on the engine (`alerts::rules`) that decides when they fire.

use serde::Serialize;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Offline, stalled, in error, or connected but silent.
    Offline,
    /// Hashrate below a share of its 24-h average.
    HashrateLow,
    /// Chip temperature above the limit.
    Temperature,
    /// The miner cannot reach its pool.
    PoolDisconnected,
    /// Too many rejected shares.
    SharesRejected,
    /// The miner rebooted.
    Rebooted,
    /// The miner found a block.
    BlockFound,
    /// The Shepherd's own database cannot be written (a full disk); herd-wide, miner id 0.
    /// Not stored in `alerts` (the database is what fails), only sent and logged.
    DatabaseWrites,
    /// The pool refuses the worker; the firmware hashes on for nothing.
    WorkerRejected,
    /// Many reboots in a short time.
    RebootStorm,
    /// A brown-out reset.
    Brownout,
    /// Self-healing reset or power cycled a stuck miner (`[self_heal]`); not a rule the owner
    /// tunes, so not in [`ALL_RULES`].
    SelfHealing,
    /// The Pi moved a miner to another pool of its profile (failover, schedule window): a
    /// flash write the owner should hear about; like [`Rule::SelfHealing`] not tunable.
    PoolSwitched,
}

impl Rule {
    /// Name stored in `alerts.rule` and sent to notifiers.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Offline => "offline",
            Rule::HashrateLow => "hashrate_low",
            Rule::Temperature => "temperature",
            Rule::PoolDisconnected => "pool_disconnected",
            Rule::SharesRejected => "shares_rejected",
            Rule::Rebooted => "rebooted",
            Rule::BlockFound => "block_found",
            Rule::DatabaseWrites => "database_writes",
            Rule::WorkerRejected => "worker_rejected",
            Rule::RebootStorm => "reboot_storm",
            Rule::Brownout => "brownout",
            Rule::SelfHealing => "self_healing",
            Rule::PoolSwitched => "pool_switched",
        }
    }

    /// The rule named `s` (as stored).
    pub fn parse(s: &str) -> Option<Rule> {
        ALL_RULES.into_iter().find(|r| r.as_str() == s)
    }

    /// A happening is sent once; a condition stays active until it clears.
    pub fn is_happening(self) -> bool {
        matches!(
            self,
            Rule::Rebooted
                | Rule::BlockFound
                | Rule::Brownout
                | Rule::SelfHealing
                | Rule::PoolSwitched
        )
    }
}

/// Every rule, in display order.
pub const ALL_RULES: [Rule; 10] = [
    Rule::Offline,
    Rule::HashrateLow,
    Rule::Temperature,
    Rule::PoolDisconnected,
    Rule::SharesRejected,
    Rule::Rebooted,
    Rule::BlockFound,
    Rule::WorkerRejected,
    Rule::RebootStorm,
    Rule::Brownout,
];

/// How urgent a notification is (ntfy priority, Home Assistant, the dashboard colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Good news or a cleared alert.
    Info,
    /// Something needs looking at.
    Warning,
    /// The one everyone hopes for.
    Celebrate,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A condition started (after its delay) or a happening happened.
    Fired,
    /// Still active after `repeat_minutes`.
    Repeat,
    /// The condition has been clear for `clear_secs`.
    Resolved,
}

/// One notification to store and send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// Which miner.
    pub miner_id: i64,
    /// Its name.
    pub miner: String,
    /// Which rule.
    pub rule: Rule,
    /// Fired, repeat or resolved.
    pub kind: NoticeKind,
    /// How urgent.
    pub severity: Severity,
    /// One line for a human.
    pub message: String,
    /// When (Unix ms).
    pub at: i64,
}

impl Notice {
    /// A short title: "miner-1: offline" / "miner-1: offline resolved".
    pub fn title(&self) -> String {
        let what = match self.rule {
            Rule::Offline => "offline",
            Rule::HashrateLow => "hashrate low",
            Rule::Temperature => "running hot",
            Rule::PoolDisconnected => "pool disconnected",
            Rule::SharesRejected => "shares rejected",
            Rule::Rebooted => "rebooted",
            Rule::BlockFound => "BLOCK FOUND",
            Rule::DatabaseWrites => "database writes failing",
            Rule::WorkerRejected => "pool rejects worker",
            Rule::RebootStorm => "reboot storm",
            Rule::Brownout => "brown-out reset",
            Rule::SelfHealing => "self-healing acted",
            Rule::PoolSwitched => "pool switched automatically",
        };
        match self.kind {
            NoticeKind::Resolved => format!("{}: {what} resolved", self.miner),
            _ => format!("{}: {what}", self.miner),
        }
    }
}

/// What a stored event says, reduced to what the rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// ROM banner or "starting": the board rebooted.
    Boot,
    /// A block was found.
    BlockFound,
    /// The pool connection is down (unreachable, timed out, status `connected=false`).
    PoolDown,
    /// The pool connection works (status `connected=true`, subscribe, new job).
    PoolUp,
    /// "NerdMiner v2 starting" without a ROM banner just before (native-USB boards lose it).
    Starting,
    /// A brown-out: the detector's line, or a ROM reset reason naming it.
    Brownout,
}

/// One event since the last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Which miner.
    pub miner_id: i64,
    /// When (Unix ms).
    pub ts: i64,
    /// What it says.
    pub sign: Sign,
}

/// An active alert as stored, to carry on after a restart without notifying again.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    /// Which miner.
    pub miner_id: i64,
    /// Which rule.
    pub rule: Rule,
    /// When it was last sent (Unix ms).
    pub last_sent_at: i64,
}
