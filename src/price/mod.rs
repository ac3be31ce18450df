//! BTC price and network figures.

pub mod fetch;
pub mod providers;
