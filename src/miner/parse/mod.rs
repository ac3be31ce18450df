//! Recognises what a NerdMiner_v2 log line means.
//!
//! Every format string the firmware (BitMaker-hub/NerdMiner_v2, from the 2023 releases to
//! V1.8.x) prints on serial that matters for watching a miner maps to a [`MinerEvent`](crate::model::event::MinerEvent).
//! Tasks print concurrently, so one line can hold the tail of another task's output in
//! front of a marker (`*wm:[ERR>>> Completed ...`): markers are searched anywhere in the
//! line, and a line can yield several events. Matching is hand-written (no regex) because
//! it runs for every line of every miner, and it never panics on any input.
//!
//! [`mask_secrets`] hides the pool password before a line is stored or shown.

mod mask;
mod rules;
mod scan;
#[cfg(test)]
mod tests;

pub use mask::mask_secrets;
pub use rules::{parse_line, parse_line_into};
