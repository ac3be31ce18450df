//! Fleet configuration as desired state: pool profiles (a primary and ordered fallbacks), each
//! miner's desired configuration (profile, payout address, worker name, board keys), the drift
//! between that and what the miner's `/config.json` was last read as, and the Pi-side failover
//! and schedules that pick which of a profile's pools a miner should be on.
//!
//! Everything here but [`probe`] is pure: the database rows come in, decisions come out, and
//! the writes go through the one safe write path (SET_CONFIG, canary rollout).

/// Which keys differ between a miner's desired and read-back configuration.
pub mod drift;
/// When to move a miner to a fallback pool and back: a pure state machine over time.
pub mod failover;
/// Testing a pool from the Pi: TCP connect and stratum `mining.subscribe`.
pub mod probe;
/// Pool profiles: a primary pool, fallbacks, failover options and schedules.
pub mod profile;
/// Worker names: pool-safe, unique, and `btcString` as `address.worker`.
pub mod worker;
/// Schedule windows' time zone: a named IANA zone or the Pi's own.
pub mod zone;

pub use drift::{drift, Drift};
pub use profile::{Endpoint, Profile, Window};
