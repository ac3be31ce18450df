//! What a dashboard says about a miner, from its link state and when it was last heard: a
//! pure noun that the summary, the diagnosis, the pages and the alerts share.

use serde::Serialize;

/// What a dashboard says about a miner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Port open, data arriving.
    Online,
    /// Port open, but nothing printed for a while.
    Stalled,
    /// Port open, never printed anything.
    NoData,
    /// No port.
    Offline,
    /// The port cannot be used; see the detail.
    Error,
}

/// Status from the link state, the last time a line arrived, and the stall threshold.
pub fn derive_status(link_state: &str, last_seen: Option<i64>, now: i64, stall_ms: i64) -> Status {
    match link_state {
        "error" => Status::Error,
        "connected" => match last_seen {
            None => Status::NoData,
            Some(t) if now - t > stall_ms => Status::Stalled,
            Some(_) => Status::Online,
        },
        _ => Status::Offline,
    }
}
