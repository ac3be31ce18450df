//! `read_tokens`: read-only tokens for kiosks and Prometheus (see [`crate::web::auth`]).

use rusqlite::{params, Connection};

use crate::clock::now_ms;

/// A token as listed on `/settings` (its secret is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Row id (revoking uses it).
    pub id: i64,
    /// What it is for ("kitchen kiosk").
    pub label: String,
    /// When it was made (Unix ms).
    pub created_at: i64,
}

/// Every token, newest first.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenRow>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, label, created_at FROM read_tokens ORDER BY id DESC")?;
    let rows = stmt.query_map([], |r| {
        Ok(TokenRow {
            id: r.get(0)?,
            label: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// The SHA-256 (hex) of every token.
pub fn digests(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT token_sha256 FROM read_tokens")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Stores a new token's digest; returns its id.
pub fn add(conn: &Connection, label: &str, digest: &str) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO read_tokens (label, token_sha256, created_at) VALUES (?1, ?2, ?3)",
        params![label, digest, now_ms()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Revokes a token; whether it existed.
pub fn revoke(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM read_tokens WHERE id = ?1", [id])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_added_listed_and_revoked() {
        let c = crate::db::memory_db();
        let a = add(&c, "kitchen", "aa").unwrap();
        let b = add(&c, "prometheus", "bb").unwrap();
        assert_eq!(digests(&c).unwrap().len(), 2);
        assert_eq!(list(&c).unwrap()[0].id, b);
        assert!(revoke(&c, a).unwrap());
        assert!(!revoke(&c, a).unwrap());
        assert_eq!(digests(&c).unwrap(), ["bb"]);
        assert!(add(&c, "dup", "bb").is_err(), "digests are unique");
    }
}
