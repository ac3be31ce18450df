//! A few read-only connections for pages and the summarizer, so a page never waits on ingest.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::migrate::{open_reader, DbError};

/// Reusable read-only connections to one database file.
#[derive(Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// Most connections kept idle; more are opened on demand and closed after use.
const MAX_IDLE: usize = 8;

impl ReadPool {
    /// A pool over `path` (which must already exist: the writer creates it).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on a read-only connection. Blocking: call from `web::block` or a thread.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, DbError> {
        let taken = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match taken {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        Ok(result?)
    }
}
