//! The database: schema and upgrades, the one writer (DbActor), read-only connections for
//! pages, and the SQL, kept here in named functions.

pub mod actor;
pub mod devices;
pub mod history;
pub mod migrate;
pub mod miners;
pub mod pool;
pub mod price_cache;
pub mod queries;
pub mod settings;
pub mod summaries;

pub use actor::{DbActor, IngestLine, IngestStats, LinesRead, LinkChanged, LinkState, Write};
pub use migrate::{open_reader, open_writer, DbError, Migration};
pub use pool::ReadPool;
