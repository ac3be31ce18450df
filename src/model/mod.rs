//! The nouns every layer shares, as plain data with no I/O: what a miner said (events, and the
//! batches of lines that carry them to the database), what an
//! alert is, what a USB device is, what sites say on MQTT, what a price or network provider
//! answers (and how its URL and body are checked: `config` validates with it, `price` fetches
//! with it). The database stores and loads them; the actors and pages
//! above it read them. Nothing here imports anything else of the crate.

pub mod alert;
pub mod device;
pub mod event;
pub mod lines;
pub mod price;
pub mod site;
pub mod status;
