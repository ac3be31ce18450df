//! The database: schema and upgrades, the one writer (DbActor), read-only connections for
//! pages, and the SQL, kept here in named functions.

pub mod actor;
pub mod alert_settings;
pub mod alerts;
pub mod commands;
pub mod devices;
pub mod fleet;
pub mod history;
pub mod hub;
pub mod incidents;
pub mod logs;
pub mod migrate;
pub mod miners;
pub mod pool;
pub mod price_cache;
pub mod queries;
pub mod read_tokens;
pub mod reboots;
pub mod records;
pub mod retention;
pub mod settings;
pub mod summaries;

pub use actor::{DbActor, IngestStats, LinesRead, LinkChanged, LinkState, Write};
pub use migrate::{open_reader, open_writer, DbError, Migration};
pub use pool::ReadPool;

/// A fresh in-memory database with the current schema and foreign keys on, for unit tests.
#[cfg(test)]
pub fn memory_db() -> rusqlite::Connection {
    let mut c = rusqlite::Connection::open_in_memory().unwrap();
    c.pragma_update(None, "foreign_keys", true).unwrap();
    migrate::migrate(&mut c).unwrap();
    c
}
