//! `price_cache`: the last known price and network figures, each a JSON value under a key,
//! with the time it was fetched. One row per key; a new fetch replaces the old row.

use rusqlite::{params, Connection, OptionalExtension};

/// One row of `price_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRow {
    /// What it is (`price:USD`, `network`, `price_status`, …).
    pub key: String,
    /// The value as JSON.
    pub value_json: String,
    /// When it was fetched (Unix ms).
    pub fetched_at: i64,
}

/// Stores `rows` in one transaction, replacing rows with the same keys.
pub fn store(conn: &mut Connection, rows: &[CacheRow]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO price_cache (key, value_json, fetched_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json,
               fetched_at = excluded.fetched_at",
        )?;
        for row in rows {
            stmt.execute(params![row.key, row.value_json, row.fetched_at])?;
        }
    }
    tx.commit()
}

/// The row stored under `key`, if any.
pub fn load(conn: &Connection, key: &str) -> rusqlite::Result<Option<CacheRow>> {
    conn.prepare_cached("SELECT key, value_json, fetched_at FROM price_cache WHERE key = ?1")?
        .query_row([key], |r| {
            Ok(CacheRow {
                key: r.get(0)?,
                value_json: r.get(1)?,
                fetched_at: r.get(2)?,
            })
        })
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_replaces_and_load_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) = crate::db::open_writer(&dir.path().join("t.db")).unwrap();
        assert_eq!(load(&conn, "price:USD").unwrap(), None);
        let row = |v: &str, t| CacheRow {
            key: "price:USD".into(),
            value_json: v.into(),
            fetched_at: t,
        };
        store(&mut conn, &[row("1", 10)]).unwrap();
        store(&mut conn, &[row("2", 20)]).unwrap();
        assert_eq!(load(&conn, "price:USD").unwrap(), Some(row("2", 20)));
    }
}
